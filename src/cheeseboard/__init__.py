"""cheeseboard: a self-hosted Python package index (PyPI caching mirror plus private indexes)."""

__version__ = "0.1.0"
