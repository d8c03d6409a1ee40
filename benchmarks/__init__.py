"""Benchmarks comparing cheeseboard with devpi-server on the same machine (``make bench``).

Not part of the test suite: run ``python -m benchmarks.run --help``.
"""
