"""``serve --help`` (issue 23): defaults as an operator writes them, not as Python prints them."""

from __future__ import annotations

import re

from click.testing import CliRunner

from cheeseboard.server.cli import main, shown_default


def _help() -> str:
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=1000)
    assert result.exit_code == 0, result.output
    return result.output


def test_lists_are_comma_joined_and_whole_numbers_have_no_fraction() -> None:
    text = _help()
    assert "[default: root]" in text
    assert "[default: 1800]" in text  # --mirror-cache-expiry, 1800.0 in settings
    assert "[default: 5]" in text  # --request-timeout, 5.0
    assert not re.search(r"\[default: [^]]*(\(|\)|'|\.0\]|None)", text), text


def test_numeric_options_are_named_as_numbers() -> None:
    text = _help()
    assert re.search(r"--port INTEGER\s", text)
    assert re.search(r"--mirror-cache-expiry NUMBER\s", text)
    assert re.search(r"--restrict-modify LIST\s", text)
    assert re.search(r"--outside-url TEXT\s", text)


def test_shown_default() -> None:
    assert shown_default(("root", ":admins")) == "root,:admins"
    assert shown_default(()) == ""
    assert shown_default(None) == ""
    assert shown_default(2.5) == "2.5"
    assert shown_default(300.0) == "300"
    assert shown_default(False) == "False"
