"""The web UI: server-rendered pages for browsers, beside the APIs for installers."""
