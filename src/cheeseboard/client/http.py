"""A tiny urllib JSON client that turns every failure into one ``ClientError``."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from cheeseboard import __version__

USER_AGENT = f"cheeseboard-client/{__version__}"
TIMEOUT = 60.0


class ClientError(Exception):
    """A failure to show the user: one line of what went wrong plus a hint."""

    def __init__(self, message: str, hint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status


def unsupported(
    error: ClientError, ours: tuple[str, ...], feature: str, hint: str = ""
) -> ClientError:
    """``error``, or "this server does not offer <feature>" when it is a 404 or 405 that is not
    one of ours: a server without the feature (devpi) has no such route. Our own 404s name what
    is missing (``ours``: words such as "no index")."""
    if error.status in (404, 405) and not any(word in error.message for word in ours):
        return ClientError(f"this server does not offer {feature}", hint)
    return error


def _server_message(raw: bytes, fallback: str) -> str:
    """The ``message`` of a devpi JSON error body, else the text or the HTTP reason."""
    try:
        data = json.loads(raw)
    except ValueError:
        text = raw.decode(errors="replace").strip()
        return text.splitlines()[0] if text and not text.startswith("<") else fallback
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return fallback


def error_for(status: int, message: str) -> ClientError:
    """Map an HTTP error status and the server's message to a ClientError."""
    if status == 401:
        return ClientError(
            f"wrong password or not logged in: {message}",
            "run: cheeseboard login USER",
            status,
        )
    if status == 403:
        return ClientError(f"no permission: {message}", "", status)
    if status == 404:
        return ClientError(f"not found: {message}", "", status)
    return ClientError(f"server error {status}: {message}", "", status)


class HttpClient:
    """JSON requests against one server root with optional devpi credentials."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ClientError(f"not an http(s) URL: {base_url}", "cheeseboard use http://host:port")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.auth = auth

    def url(self, path: str) -> str:
        """Absolute URL of a server path such as ``user/index``."""
        return self.base_url + path.lstrip("/")

    def headers(self) -> dict[str, str]:
        """Common headers: user agent and ``X-Devpi-Auth`` when credentials are known."""
        headers = {"User-Agent": USER_AGENT}
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["X-Devpi-Auth"] = token
        return headers

    def json(self, method: str, path: str, body: Any = None) -> Any:
        """Send a JSON request; returns the parsed reply (``None`` for an empty body)."""
        headers = self.headers()
        headers["Accept"] = "application/json"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        raw = self.send(method, path, data, headers)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise ClientError(f"server sent invalid JSON for {method} {path}") from error

    def send(
        self,
        method: str,
        path: str,
        data: bytes | Iterable[bytes] | None,
        headers: dict[str, str],
    ) -> bytes:
        """One request; HTTP and connection failures become ClientError."""
        url = self.url(path)
        # The scheme is checked in __init__: only http and https.
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
            raise error_for(error.code, _server_message(raw, str(error.reason))) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ClientError(
                f"server unreachable at {self.base_url} ({reason})",
                "check the URL and that the server runs: cheeseboard use URL",
            ) from None

    def stream(
        self, method: str, path: str, body: Iterable[bytes], headers: dict[str, str]
    ) -> bytes:
        """Send a large body chunk by chunk (``headers`` must carry its Content-Length).

        A server may answer (401, 403, 413) and close before the body is through; the write
        then fails, but its answer is already on the socket, so read it instead of reporting
        a broken pipe.
        """
        url = urlsplit(self.url(path))
        target = url.path + (f"?{url.query}" if url.query else "")
        connection: http.client.HTTPConnection
        if url.scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(url.netloc, timeout=TIMEOUT, context=context)
        else:
            connection = http.client.HTTPConnection(url.netloc, timeout=TIMEOUT)
        try:
            try:
                connection.putrequest(method, target, skip_accept_encoding=True)
                for name, value in headers.items():
                    connection.putheader(name, value)
                connection.endheaders()
                for chunk in body:
                    connection.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the answer, if any, tells why; no answer is reported below
            try:
                response = connection.getresponse()
                raw = response.read()
            except (http.client.HTTPException, OSError) as error:
                raise ClientError(
                    f"server unreachable at {self.base_url} ({error})",
                    "check the URL and that the server runs: cheeseboard use URL",
                ) from None
        except OSError as error:
            raise ClientError(
                f"server unreachable at {self.base_url} ({error})",
                "check the URL and that the server runs: cheeseboard use URL",
            ) from None
        finally:
            connection.close()
        if response.status >= 400:
            raise error_for(response.status, _server_message(raw, response.reason))
        return raw
