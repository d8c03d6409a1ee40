"""The `cheeseboard-server` command: settings, init and serve."""
