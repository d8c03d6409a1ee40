"""Bounded readers for uploaded and mirrored archives (sdists, wheels): hostile input lives here."""
