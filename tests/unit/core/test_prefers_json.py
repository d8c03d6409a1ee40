"""Errors answer JSON when the Accept header prefers it (core/negotiation.py ``prefers_json``)."""

from __future__ import annotations

import pytest

from cheeseboard.core.negotiation import prefers_json


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",  # devpi-client
        "application/json, */*",  # named beats the wildcard at the same q
        "application/vnd.pypi.simple.v1+json",  # pip, uv
        "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        "text/plain;q=0.5, application/json;q=0.9",
        "application/*",
    ],
)
def test_json_is_preferred(accept: str) -> None:
    assert prefers_json(accept)


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",  # curl, requests, twine
        "text/plain, application/json;q=0.1",  # a substring test said JSON here
        "application/json;q=0",  # refused outright
        "application/json, text/plain",  # a tie keeps plain text
        "text/html, */*;q=0.8",
        "application/vnd.pypi.simple.v1+json;q=0, text/html",
    ],
)
def test_plain_text_is_kept(accept: str | None) -> None:
    assert not prefers_json(accept)
