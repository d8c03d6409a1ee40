"""The storage options (``--database-url``, ``--blob-url``) of the commands other than ``serve``,
checked as ``serve`` checks them (settings.OPTIONS), so that ``init`` with a PostgreSQL URL and
no driver installed names the extra to install instead of printing a traceback."""

from __future__ import annotations

from cheeseboard.settings import OPTIONS, SettingsError

_CONVERT = {option.name: option.convert for option in OPTIONS}


def checked_database_url(url: str | None) -> str | None:
    """``url`` if its database can be opened by this installation; raises SettingsError."""
    try:
        converted: str | None = _CONVERT["database-url"](url)
    except ValueError as exc:
        raise SettingsError(f"--database-url: {exc}") from None
    return converted


def checked_blob_url(url: str | None) -> str | None:
    """``url`` if it names a bucket as ``serve`` needs it (endpoint, region, credentials)."""
    try:
        converted: str | None = _CONVERT["blob-url"](url)
        if converted is not None:
            from cheeseboard.store.s3 import S3Location  # aiohttp: only for a bucket

            S3Location.from_url(converted)
    except ValueError as exc:
        raise SettingsError(f"--blob-url: {exc}") from None
    return converted
