"""Offline tools: backup, garbage collection, the data directory, export and import."""
