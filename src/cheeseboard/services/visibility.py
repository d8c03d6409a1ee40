"""Who may read which index: the one place every read path asks (docs/security.md, "Reading").

An index is read by the principals of its ``acl_read``, its owner and root (core/acl.py
``may_read``); ``--read-requires-auth`` keeps anonymous callers out of everything. Answers are
pure lookups in the in-memory index registry, cheap enough for the hot path.

Refusals must not tell a private index from a missing one: the caller who may not read an index
gets exactly what a request for an index that does not exist gets (``not_found``), and, once
anonymous callers may not read everything, an anonymous request for a missing index is asked for
credentials just like one for a private index.
"""

from __future__ import annotations

from collections.abc import Iterable

from cheeseboard.core import acl
from cheeseboard.core.sro import IndexNode, resolution_order
from cheeseboard.services.auth import Identity
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.settings import Settings
from cheeseboard.store.records import Change, IndexRecord

Reader = acl.Who
"""Who reads: an identity (a scoped token's covers only its indexes; its groups count), or a
user name (None: anonymous)."""


def _reads_as(reader: Reader, index: IndexRecord) -> acl.Who:
    """Who ``reader`` reads ``index`` as: a scoped token's owner (with its groups) on the
    token's indexes, anonymous on every other one (its bases included)."""
    if isinstance(reader, Identity):
        scope = reader.token_indexes
        if scope is not None and index.fullname not in scope:
            return None
        return reader
    return reader


def index_not_found(user: str, name: str) -> str:
    """The message of a 404 for an index that does not exist, or that the caller may not read
    (the same words, so the two can't be told apart)."""
    return f"no index {user}/{name}"


class ReadAccess:
    """Read decisions over the live index registry."""

    def __init__(self, settings: Settings, registry: IndexRegistry) -> None:
        self._settings = settings
        self._registry = registry
        # index -> its bases that anonymous callers may not read (usually none)
        self._restricted: dict[str, tuple[IndexRecord, ...]] = {}
        self._any_private: bool | None = None  # whether some index hides from anonymous callers

    def decide(self, reader: Reader, index: IndexRecord) -> acl.Decision:
        return acl.may_read(
            _reads_as(reader, index),
            index.user,
            acl.acl_read_of(index.config),
            self._settings.read_requires_auth,
        )

    @staticmethod
    def reads_as(reader: Reader, index: IndexRecord) -> str | None:
        """The user ``reader`` reads ``index`` as (None: anonymous)."""
        return acl.name_of(_reads_as(reader, index))

    def may_read(self, reader: Reader, index: IndexRecord) -> bool:
        return self.decide(reader, index).allowed

    def anonymous_restricted(self) -> bool:
        """Whether some index is hidden from anonymous callers (then a missing index is answered
        to them as a private one: 401, not 404)."""
        if self._settings.read_requires_auth:
            return True
        if self._any_private is None:  # once per index change, not per anonymous 404
            self._any_private = any(not self.may_read(None, ix) for ix in self._registry.all())
        return self._any_private

    def readable(self, reader: Reader, indexes: Iterable[IndexRecord]) -> list[IndexRecord]:
        """The ones among ``indexes`` that ``reader`` may read, in their order."""
        return [index for index in indexes if self.may_read(reader, index)]

    def hidden_bases(self, reader: Reader, index: IndexRecord) -> frozenset[str]:
        """Full names of the bases of ``index`` (its whole resolution order) that ``user`` may
        not read: its pages merge only the bases their reader may read. Empty, from memory,
        unless some base is not public."""
        restricted = self._restricted.get(index.fullname)
        if restricted is None:
            restricted = self._restricted_bases(index)
            self._restricted[index.fullname] = restricted
        if not restricted:
            return frozenset()
        return frozenset(base.fullname for base in restricted if not self.may_read(reader, base))

    def _restricted_bases(self, index: IndexRecord) -> tuple[IndexRecord, ...]:
        nodes = {
            ix.fullname: IndexNode.from_config(ix.fullname, {**ix.config, "type": ix.type})
            for ix in self._registry.all()
        }
        order = resolution_order(index.fullname, nodes)[1:]
        bases = [base for name in order if (base := self._registry.by_name(name)) is not None]
        return tuple(base for base in bases if not self.may_read(None, base))

    def on_change(self, change: Change) -> None:
        """Index configurations decide what is restricted: forget it when one changes (after
        the registry has reloaded: subscribed after it)."""
        if change.kind.concerns_indexes:
            self._restricted.clear()
            self._any_private = None
