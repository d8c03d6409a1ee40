"""How many fuzz inputs each target ran, shown in pytest's closing summary.

Hypothesis decides how many examples a property runs (fewer when its input space is small, more
while shrinking a failure), so the tests count what actually ran instead of quoting settings.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import pytest

P = ParamSpec("P")
R = TypeVar("R")

FUZZ_COUNTS: Counter[str] = Counter()
_PLUGIN_NAME = "cheeseboard-fuzz-counts"


def counted(target: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count each call of the decorated function (one fuzz input) under ``target``.

    Put it below ``@given``, so every example hypothesis runs is counted.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            FUZZ_COUNTS[target] += 1
            return function(*args, **kwargs)

        return wrapper

    return decorate


def add(target: str, inputs: int) -> None:
    """Count ``inputs`` fuzz inputs run elsewhere (atheris runs, requests to a live server)."""
    FUZZ_COUNTS[target] += inputs


class _Summary:
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not FUZZ_COUNTS:
            return
        terminalreporter.write_sep("-", "fuzz inputs run")
        for target, inputs in sorted(FUZZ_COUNTS.items()):
            terminalreporter.write_line(f"{target}: {inputs}")
        terminalreporter.write_line(f"total: {sum(FUZZ_COUNTS.values())}")


def show_counts(config: pytest.Config) -> None:
    """Have pytest print the counts at the end of the session (once, whoever asks first)."""
    if not config.pluginmanager.has_plugin(_PLUGIN_NAME):
        config.pluginmanager.register(_Summary(), _PLUGIN_NAME)
