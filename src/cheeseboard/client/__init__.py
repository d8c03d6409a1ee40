"""The ``cheeseboard`` command-line client: click, rich and the standard library only."""
