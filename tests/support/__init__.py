"""Shared helpers for the test suite: package factory and fake upstream index."""
