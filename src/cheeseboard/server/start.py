"""The ``cheeseboard-server`` entry point: the command line, imported with the collector paused.

Start-up is mostly imports (issue 19: about half a second before the first answer), and while a
module body runs, Python's cyclic garbage collector keeps walking the objects made so far, none
of which is garbage yet. Pausing it for the imports saves about a fifth of that time. What the
imports made is then frozen (``gc.freeze``) before the collector is switched back on: otherwise
its first collection walks them all at once (about 100,000 objects, 25 ms), only to find nothing.
``serve`` freezes again before the workers fork, so that neither the parent nor the workers walk
those objects and the pages they sit on stay shared.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for a block of imports (reference counting still frees),
    and keep it from walking what they made once it runs again: modules, classes and functions
    live as long as the process."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def main() -> None:
    """Run ``cheeseboard-server`` (server/cli.py)."""
    with collector_paused():
        from cheeseboard.server.cli import main as cli_main
    cli_main()
