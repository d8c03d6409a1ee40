"""Core metadata (METADATA / PKG-INFO, RFC 822 style) to plain fields, as PyPI's JSON ``info``."""

from __future__ import annotations

from email.parser import Parser
from email.policy import compat32
from typing import Any

# METADATA header -> JSON key, for single-valued fields.
_SINGLE = {
    "Name": "name",
    "Version": "version",
    "Summary": "summary",
    "Home-page": "home_page",
    "Download-URL": "download_url",
    "Author": "author",
    "Author-email": "author_email",
    "Maintainer": "maintainer",
    "Maintainer-email": "maintainer_email",
    "License": "license",
    "License-Expression": "license_expression",
    "Keywords": "keywords",
    "Requires-Python": "requires_python",
    "Description-Content-Type": "description_content_type",
    "Metadata-Version": "metadata_version",
}
# Repeated headers -> JSON key (lists).
_MULTI = {
    "Classifier": "classifiers",
    "Platform": "platform",
    "Requires-Dist": "requires_dist",
    "Provides-Extra": "provides_extra",
    "Provides-Dist": "provides_dist",
    "Obsoletes-Dist": "obsoletes_dist",
    "Requires-External": "requires_external",
    "Dynamic": "dynamic",
    "License-File": "license_files",
}


def parse_core_metadata(data: bytes) -> dict[str, Any]:
    """Fields of a METADATA file; absent single fields are None, absent lists are []."""
    # Core metadata is UTF-8. BytesParser would decode it as ASCII with surrogate escapes, so
    # "José" came out as "Jos\udcc3\udca9", which no UTF-8 encoder (JSON, SQLite) accepts;
    # bytes that are not UTF-8 (old PKG-INFO files) become U+FFFD instead.
    message = Parser(policy=compat32).parsestr(data.decode("utf-8", errors="replace"))
    fields: dict[str, Any] = {}
    for header, key in _SINGLE.items():
        value = message.get(header)
        fields[key] = str(value) if value is not None else None
    for header, key in _MULTI.items():
        fields[key] = [str(v) for v in message.get_all(header) or []]
    urls: dict[str, str] = {}
    for entry in message.get_all("Project-URL") or []:
        label, _, url = str(entry).partition(",")
        if url.strip():
            urls[label.strip()] = url.strip()
    fields["project_urls"] = urls
    body = message.get_payload()
    description = body if isinstance(body, str) and body.strip() else message.get("Description")
    fields["description"] = str(description) if description is not None else None
    return fields
