"""Adapters for persistent state: the metadata database and the blob store."""
