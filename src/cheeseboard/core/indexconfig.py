"""Index configuration: validation, defaults and devpi's PATCH semantics.

The stored form is a plain JSON-able dict, the ``result`` of ``GET /<user>/<index>`` (devpi's
``ixconfig``). Clients send loose values (devpi-client PUTs ``{"volatile": "True"}`` and
comma-separated lists), so every entry point cleans its input into that one form. Because the
form is canonical, comparing two stored dicts tells whether a change did anything.

``acl_read`` (ours; issue 20) names who may read an index besides its owner and root, with the
principals of ``acl_upload``. Both index types have it, with ``[":ANONYMOUS:"]`` (everyone) as
the default; an empty list is allowed and makes the index private (its owner and root only).
It always holds a value: ``acl_read-=`` without a value is refused like for the other required
keys, while removing its last entry leaves the empty list. Indexes stored before the setting
existed have no key: they mean, and show (``shown_config``), the default.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from cheeseboard.core.names import InvalidName, checked_project_name, checked_segment_name
from cheeseboard.core.release_policy import (
    PolicyError,
    exemption_from,
    format_time,
    parse_age,
    parse_time,
)
from cheeseboard.core.retention import RETENTION_KEYS, RetentionConfigError, retention_config

Config = dict[str, object]
BaseExists = Callable[[str], bool]


class ConfigError(ValueError):
    """Raised for an invalid index configuration; the message is shown to the client with 400."""


def _shown(value: object, quote: bool = True) -> str:
    """``value`` for a message (its repr, or str with ``quote`` False), cut short: a 1 MB value
    is not echoed back whole."""
    if isinstance(value, str):
        value = value[: _MAX_SHOWN + 1]  # a 1 MB string is not copied whole to be cut
    text = repr(value) if quote else str(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


INDEX_TYPES = ("stage", "mirror")
WHITELIST_INHERITANCE = ("intersection", "union")
# List settings of both index types: who reads a mirror matters as much as who reads a stage.
_COMMON_LIST_KEYS = frozenset({"acl_read"})
# The supply-chain guard (issue 21, core/release_policy.py), on both index types.
POLICY_KEYS = frozenset({"min_release_age", "release_cutoff", "release_age_exempt"})
EXEMPT_KEY = "release_age_exempt"
_COMMON_KEYS = (
    frozenset({"type", "volatile", "title", "description", "custom_data"})
    | _COMMON_LIST_KEYS
    | POLICY_KEYS
)
_STAGE_LIST_KEYS = frozenset({"bases", "acl_upload", "acl_toxresult_upload", "mirror_whitelist"})
LIST_KEYS = _STAGE_LIST_KEYS | _COMMON_LIST_KEYS
# allow_upstream_names (ours, not devpi's): may the stage take uploads of names upstream has?
_STAGE_ONLY = _STAGE_LIST_KEYS | {"mirror_whitelist_inheritance", "allow_upstream_names"}
MIRROR_FLAGS = (
    "mirror_use_external_urls",
    "mirror_no_project_list",
    "mirror_ignore_serial_header",
    "mirror_provides_core_metadata",
)
# Cleanup policies (issue 23, core/retention.py): stage only, optional (``key-=`` drops them).
STAGE_KEYS = _COMMON_KEYS | _STAGE_ONLY | RETENTION_KEYS
MIRROR_KEYS = _COMMON_KEYS | {
    "mirror_url",
    "mirror_cache_expiry",
    "mirror_web_url_fmt",
    *MIRROR_FLAGS,
}
# devpi drops stage settings from a mirror without complaint: clients copy configs around.
MIRROR_DROPPED_KEYS = _STAGE_ONLY
# Keys that always hold a value, so ``key-=`` can't remove them.
REQUIRED_KEYS = frozenset({"type", "volatile", "mirror_url"}) | _STAGE_ONLY | _COMMON_LIST_KEYS
# Sent back by clients that PATCH what they got from GET; not configuration.
_IGNORED_KEYS = frozenset({"projects"})
_OPTIONAL_TEXT = ("title", "description", "mirror_web_url_fmt")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() also accepts "²" and other non-ASCII digits
# More digits than any sensible expiry, and far below the 4300 beyond which int() refuses (a
# ValueError that is not a ConfigError, so it was a 500).
_MAX_EXPIRY_DIGITS = 12
_MAX_SHOWN = 100  # characters of a client's value quoted back in a message
# Entries a list setting may hold (acl_upload, acl_read, ..., mirror_whitelist): far more
# than real configs use, and small enough that no edit or page merge over them is slow. Bases
# are fewer: every page of the index merges each of them (and their bases).
MAX_LIST_ENTRIES = 1000
MAX_BASES = 50
ANONYMOUS = ":ANONYMOUS:"
AUTHENTICATED = ":AUTHENTICATED:"
# Who reads a new index besides its owner and root (core/acl.py acl_read_of: the same default
# for indexes stored before the setting existed).
DEFAULT_ACL_READ = (ANONYMOUS,)


def new_index_config(
    owner: str,
    raw: Mapping[str, object],
    base_exists: BaseExists,
    *,
    fullname: str,
    actor: str | None = None,
    now: float | None = None,
) -> Config:
    """Validate the body of ``PUT /<owner>/<index>`` and fill in devpi's defaults.

    ``fullname`` is the new index's own ``user/index``, which may not be one of its bases;
    ``actor`` (default: the owner) and ``now`` are recorded with new exemptions.
    """
    return _validated(owner, fullname, raw, base_exists, _Author(actor or owner, now))


def patch_index_config(
    current: Mapping[str, object],
    patch: Mapping[str, object] | Sequence[str],
    owner: str,
    fullname: str,
    base_exists: BaseExists,
    *,
    actor: str | None = None,
    now: float | None = None,
) -> Config:
    """Apply a devpi PATCH body to a stored config and validate the result.

    The body is a dict (a partial update, or the whole GET envelope sent back) or a list of
    ``k=v`` (set), ``k+=v`` (append to a list), ``k-=v`` (remove from a list) and ``k-=`` (reset an
    optional key) strings. Bases already in ``current`` are not checked again, so an edit of
    the title doesn't fail because a base was deleted since; new bases must exist.

    A list body costs time linear in its size: each list being edited is normalized once and
    kept as an ``EntrySet``, so an item touches only its own entries (a 25k-name ``-=`` took
    37 s when every item rescanned the whole list, issue 17).
    """
    index_type = current.get("type", "stage")
    author = _Author(actor or owner, now)
    if isinstance(patch, Mapping):
        merged = dict(current)
        merged.update(_unwrap_envelope(patch))
    elif isinstance(patch, str) or not isinstance(patch, Sequence):
        raise ConfigError("PATCH body must be a JSON object or a list of 'key=value' strings")
    else:
        merged = dict(current)
        edited: dict[str, EntrySet] = {}
        for item in patch:
            _apply_item(merged, edited, item, owner, author)
        for key, entries in edited.items():
            merged[key] = entries.entries()
    if merged.get("type", index_type) != index_type:
        raise ConfigError(f"the type of index {fullname} ({index_type}) can't be changed")
    known = set(_items("bases", current.get("bases", []), bounded=False))
    return _validated(
        owner, fullname, merged, lambda name: name in known or base_exists(name), author
    )


class _Author:
    """Who makes a change and when: recorded with the exemptions it adds."""

    def __init__(self, name: str, now: float | None) -> None:
        self.name = name
        self.now = time.time() if now is None else now


def config_is_noop(before: Mapping[str, object], after: Mapping[str, object]) -> bool:
    """Tell whether a change left the stored config as it was (for ``?error_on_noop``); a
    config stored without ``acl_read`` equals one with the default."""
    return shown_config(before) == shown_config(after)


def shown_config(config: Mapping[str, object]) -> Config:
    """A stored config as GET shows it: one stored before ``acl_read`` existed gets the
    default it means."""
    shown = dict(config)
    if "acl_read" not in shown:
        shown["acl_read"] = list(DEFAULT_ACL_READ)
    return shown


def _validated(
    owner: str,
    fullname: str,
    raw: Mapping[str, object],
    base_exists: BaseExists,
    author: _Author | None = None,
) -> Config:
    values = {key: value for key, value in raw.items() if key not in _IGNORED_KEYS}
    index_type = values.pop("type", "stage")
    if index_type not in INDEX_TYPES:
        raise ConfigError(f"unknown index type {_shown(index_type)}: use 'stage' or 'mirror'")
    allowed = STAGE_KEYS if index_type == "stage" else MIRROR_KEYS
    if index_type == "mirror":
        values = {k: v for k, v in values.items() if k not in MIRROR_DROPPED_KEYS}
    unexpected = [
        f"{_shown(key, False)}={_shown(value, False)}"
        for key, value in values.items()
        if key not in allowed
    ]
    if unexpected:
        more = f" and {len(unexpected) - 10} more" if len(unexpected) > 10 else ""
        raise ConfigError(
            "indexconfig got unexpected keyword arguments: " + ", ".join(unexpected[:10]) + more
        )
    config: Config = {
        "type": index_type,
        "volatile": _boolean("volatile", values.get("volatile", True)),
    }
    for key in _COMMON_LIST_KEYS:
        config[key] = _list(key, values.get(key, _list_default(owner, key)))
    if index_type == "stage":
        stage = _stage_defaults(owner) | {k: v for k, v in values.items() if k in _STAGE_ONLY}
        config["bases"] = _existing_bases(fullname, stage["bases"], base_exists)
        for key in ("acl_upload", "acl_toxresult_upload", "mirror_whitelist"):
            config[key] = _list(key, stage[key])
        config["mirror_whitelist_inheritance"] = _inheritance(stage["mirror_whitelist_inheritance"])
        config["allow_upstream_names"] = _boolean(
            "allow_upstream_names", stage["allow_upstream_names"]
        )
        try:
            config.update(retention_config(values, bool(config["volatile"])))
        except RetentionConfigError as exc:
            raise ConfigError(str(exc)) from None
    else:
        if values.get("mirror_url") is None:
            raise ConfigError("a mirror index needs a mirror_url")
        config["mirror_url"] = _mirror_url(values["mirror_url"])
        if values.get("mirror_cache_expiry") is not None:
            config["mirror_cache_expiry"] = _expiry(values["mirror_cache_expiry"])
        for key in MIRROR_FLAGS:
            if values.get(key) is not None:
                config[key] = _boolean(key, values[key])
    # Optional keys set to null count as absent, which is how a PATCH dict can drop them.
    for key in _OPTIONAL_TEXT:
        if values.get(key) is not None:
            config[key] = _text(key, values[key])
    if values.get("custom_data") is not None:
        config["custom_data"] = _custom_data(values["custom_data"])
    try:
        config.update(_policy(values, author or _Author(owner, None)))
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    return config


def _policy(values: Mapping[str, object], author: _Author) -> Config:
    """The supply-chain keys in their stored form (core/release_policy.py): the age in seconds
    (0 drops it), the cut-off as RFC 3339 UTC, the exemptions as dicts with their author."""
    config: Config = {}
    age = values.get("min_release_age")
    if age is not None and age != "":
        seconds = parse_age(age)
        if seconds:
            config["min_release_age"] = seconds
    cutoff = values.get("release_cutoff")
    if cutoff is not None and cutoff != "":
        config["release_cutoff"] = format_time(parse_time(cutoff))
    exempt = values.get(EXEMPT_KEY)
    if exempt is not None:
        entries = exempt if isinstance(exempt, list | tuple) else [exempt] if exempt else []
        _check_size(EXEMPT_KEY, len(entries))
        stored: dict[str, dict[str, object]] = {}
        for item in entries:
            exemption = exemption_from(item, author.name, author.now)
            stored[exemption.entry] = exemption.stored()  # one entry per name, the last wins
        config[EXEMPT_KEY] = list(stored.values())
    return config


def _stage_defaults(owner: str) -> dict[str, object]:
    """Observed defaults of a new devpi stage, plus ours."""
    return {
        "bases": [],
        "acl_upload": [owner],
        "acl_toxresult_upload": [ANONYMOUS],
        "mirror_whitelist": [],
        "mirror_whitelist_inheritance": "intersection",
        "allow_upstream_names": False,
    }


def _list_default(owner: str, key: str) -> object:
    """The value of the list setting ``key`` in a new index of ``owner``."""
    if key == "acl_read":
        return list(DEFAULT_ACL_READ)
    return _stage_defaults(owner)[key]


def _apply_item(
    config: Config, edited: dict[str, EntrySet], item: object, owner: str, author: _Author
) -> None:
    """Apply one ``k=v``/``k+=v``/``k-=v``/``k-=`` item of a list PATCH to ``config`` in place;
    ``edited`` holds the list settings edited so far (``config`` gets them at the end)."""
    if not isinstance(item, str):
        raise ConfigError(f"PATCH items must be strings like 'key=value', not {_shown(item)}")
    head, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(
            f"PATCH item {_shown(item)} is not 'key=value', 'key+=value' or 'key-=value'"
        )
    op = head[-1:] if head[-1:] in ("+", "-") else ""
    key = head[: len(head) - len(op)]
    if key in _IGNORED_KEYS:
        return
    if key not in STAGE_KEYS | MIRROR_KEYS:
        shown = f"{_shown(key, False)}={_shown(value, False)}"
        raise ConfigError(f"indexconfig got unexpected keyword arguments: {shown}")
    if key == EXEMPT_KEY and value:
        _edit_exemptions(config, op, value, author)
    elif not op:
        edited.pop(key, None)
        config[key] = value
    elif op == "-" and not value:
        if key in REQUIRED_KEYS:
            raise ConfigError("Default values can't be removed.")
        config.pop(key, None)
    elif key not in LIST_KEYS:
        raise ConfigError(f"The '{key}' setting is not a list: use '{key}=value' to set it")
    else:
        if key not in edited:
            # The stored list may be longer than today's bound: it can still be shortened.
            current = config.get(key, _list_default(owner, key))
            edited[key] = EntrySet(key, _list(key, current, bounded=False))
        if op == "+":
            edited[key].add(_list(key, value))
        else:
            edited[key].remove(_list(key, value))


def _edit_exemptions(config: Config, op: str, value: str, author: _Author) -> None:
    """``release_age_exempt+=foo==1.0; reason=…; expires=…`` adds (or replaces) an entry,
    ``-=foo==1.0`` removes one, ``=…`` sets the list to that one entry."""
    current = config.get(EXEMPT_KEY) or []
    entries = list(current) if isinstance(current, list) else []
    try:
        exemption = exemption_from(value, author.name, author.now)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    kept = [
        item
        for item in entries
        if not (isinstance(item, Mapping) and item.get("entry") == exemption.entry)
    ]
    if op == "-":
        if len(kept) == len(entries):
            raise ConfigError(
                f"The '{EXEMPT_KEY}' setting doesn't have value '{_shown(exemption.entry, False)}'"
            )
        config[EXEMPT_KEY] = kept
    elif op == "+":
        _check_size(EXEMPT_KEY, len(kept) + 1)
        config[EXEMPT_KEY] = [*kept, exemption.stored()]
    else:
        config[EXEMPT_KEY] = [exemption.stored()]


class EntrySet:
    """The entries of one list setting while a PATCH edits it: ordered, each once, mutable.

    Adding and removing cost time linear in the entries given, whatever the set's size (a
    dict keeps the order and answers membership in constant time).
    """

    def __init__(self, key: str, entries: Sequence[str]) -> None:
        self.key = key
        self._entries = dict.fromkeys(entries)

    def add(self, items: Sequence[str]) -> None:
        """Append the ``items`` not present yet; refused beyond the setting's bound."""
        self._entries.update(dict.fromkeys(items))
        _check_size(self.key, len(self._entries))

    def remove(self, items: Sequence[str]) -> None:
        """Remove ``items``, each of which must be present (devpi refuses the edit otherwise)."""
        for entry in items:
            if entry not in self._entries:
                raise ConfigError(
                    f"The '{self.key}' setting doesn't have value '{_shown(entry, False)}'"
                )
        for entry in items:
            self._entries.pop(entry, None)

    def entries(self) -> list[str]:
        return list(self._entries)


def _unwrap_envelope(patch: Mapping[str, object]) -> Mapping[str, object]:
    """Accept the whole ``{"result": {...}, "type": "indexconfig"}`` that GET returned."""
    result = patch.get("result")
    if isinstance(result, Mapping) and patch.get("type", "indexconfig") == "indexconfig":
        return result
    return patch


def _boolean(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    raise ConfigError(
        f"The '{key}' setting can't have value {_shown(value)}: use true/false, yes/no or 1/0"
    )


def _items(key: str, value: object, bounded: bool = True) -> list[str]:
    """Split a list or comma-separated string into stripped, non-empty entries; with
    ``bounded``, refuse more than the setting may hold before any entry is looked at."""
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list | tuple) and all(isinstance(part, str) for part in value):
        parts = list(value)
    else:
        raise ConfigError(
            f"The '{key}' setting must be a list or a comma-separated string, not {_shown(value)}"
        )
    entries = [part.strip() for part in parts if part.strip()]
    if bounded:
        _check_size(key, len(entries))
    return entries


def _check_size(key: str, size: int) -> None:
    limit = MAX_BASES if key == "bases" else MAX_LIST_ENTRIES
    if size > limit:
        raise ConfigError(f"The '{key}' setting can hold at most {limit} entries, not {size}")


def _list(key: str, value: object, bounded: bool = True) -> list[str]:
    """Return the entries of a list setting, each normalized, first occurrence kept."""
    normalize = _ENTRY_RULES[key]
    try:
        return list(dict.fromkeys(normalize(entry) for entry in _items(key, value, bounded)))
    except InvalidName as exc:
        raise ConfigError(f"The '{key}' setting has an invalid entry: {exc}") from exc


def _base_entry(entry: str) -> str:
    """``user/index``; devpi-client users write ``/root/pypi`` (a path), which devpi takes as
    ``root/pypi``: one leading slash is dropped."""
    entry = entry.removeprefix("/")
    user, sep, index = entry.partition("/")
    if not sep or "/" in index:
        raise ConfigError(f"base index {_shown(entry)} is not of the form 'user/index'")
    checked_segment_name("user", user)
    checked_segment_name("index", index)
    return entry


def _acl_entry(entry: str) -> str:
    """Special principals in devpi's upper-case spelling; ``:group:name`` (and devpi's ``:name``)
    is a group, else a user."""
    if entry.upper() in (ANONYMOUS, AUTHENTICATED):
        return entry.upper()
    if entry.startswith(":"):
        checked_segment_name("group", entry.removeprefix(":group:").removeprefix(":"))
        return entry
    return checked_segment_name("user", entry)


def _whitelist_entry(entry: str) -> str:
    return entry if entry == "*" else checked_project_name(entry)


_ENTRY_RULES: dict[str, Callable[[str], str]] = {
    "bases": _base_entry,
    "acl_upload": _acl_entry,
    "acl_toxresult_upload": _acl_entry,
    "acl_read": _acl_entry,
    "mirror_whitelist": _whitelist_entry,
}


def _existing_bases(fullname: str, bases: object, base_exists: BaseExists) -> list[str]:
    names = _list("bases", bases)
    for name in names:
        if name == fullname:
            raise ConfigError(f"index {fullname} can't be a base of itself")
        if not base_exists(name):
            raise ConfigError(f"base index '{name}' does not exist")
    return names


def _inheritance(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in WHITELIST_INHERITANCE:
        return value.strip().lower()
    raise ConfigError(
        f"The 'mirror_whitelist_inheritance' setting can't have value {_shown(value)}: "
        "use 'intersection' or 'union'"
    )


def _mirror_url(value: object) -> str:
    """An http(s) URL, stored as given (stripped), as devpi shows it back: the "/" that
    project page URLs need is added where it is used (services/indexes.py mirror_config)."""
    url = value.strip() if isinstance(value, str) else ""
    try:
        parts = urlsplit(url)
        # .port raises ValueError for a port that isn't a number
        valid = (
            parts.scheme.lower() in ("http", "https")
            and bool(parts.hostname)
            and (parts.port is None or parts.port >= 0)
        )
    except ValueError:
        valid = False
    if not valid or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ConfigError(f"mirror_url {_shown(value)} is not an http:// or https:// URL")
    if "?" in url or "#" in url:
        raise ConfigError(f"mirror_url {_shown(value)} can't have a query or fragment")
    return url


def _expiry(value: object) -> int:
    """Whole seconds, 0 included: devpi's "revalidate every time" (services/pages.py)."""
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif (
        isinstance(value, str)
        and _DIGITS.fullmatch(value.strip())
        and len(value.strip().lstrip("0")) <= _MAX_EXPIRY_DIGITS
    ):
        seconds = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    if seconds is None or seconds < 0:
        raise ConfigError(
            f"The 'mirror_cache_expiry' setting can't have value {_shown(value)}: "
            "use a whole number of seconds (0 revalidates on every request)"
        )
    return seconds


def _custom_data(value: object) -> object:
    """Any JSON value, but only JSON: a NaN or Infinity (Python's json reads them) was stored,
    and every later answer holding the config failed to serialize (a 500 until deleted)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigError(
            "The 'custom_data' setting must be plain JSON (no NaN or Infinity)"
        ) from exc
    return value


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"The '{key}' setting must be a string, not {_shown(value)}")
    return value
