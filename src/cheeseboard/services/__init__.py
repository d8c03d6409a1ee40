"""Use cases: simple pages, files, mirror refreshes, users and indexes."""
