"""Stage resolution order (sro) and the dependency-confusion whitelist (docs/devpi-protocol.md §7).

An index shows its own projects, then those of its bases breadth-first, mirrors last. A project
that a stage in that order holds hides the mirrors' files of the same name unless the whitelist
allows them, so nobody can slip a public upload in beside a private package.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cheeseboard.core.names import normalize_project_name

T = TypeVar("T")

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class IndexNode:
    """What the sro and the whitelist need to know about one index."""

    fullname: str
    is_mirror: bool
    bases: tuple[str, ...] = ()
    mirror_whitelist: frozenset[str] = frozenset()
    whitelist_inheritance: str = "intersection"  # "intersection" | "union"

    @classmethod
    def from_config(cls, fullname: str, config: Mapping[str, object]) -> IndexNode:
        """Build a node from a stored index config.

        A config without ``mirror_whitelist_inheritance`` was written before devpi had the
        setting, and devpi treats it as "union"; we do the same so imported indexes keep working.
        """
        whitelist = _strings(config.get("mirror_whitelist"))
        return cls(
            fullname=fullname,
            is_mirror=config.get("type") == "mirror",
            bases=tuple(_strings(config.get("bases"))),
            mirror_whitelist=frozenset(
                entry if entry == WILDCARD else normalize_project_name(entry) for entry in whitelist
            ),
            whitelist_inheritance=str(config.get("mirror_whitelist_inheritance", "union")),
        )


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list | tuple) else []


def resolution_order(start: str, nodes: Mapping[str, IndexNode]) -> tuple[str, ...]:
    """Return ``start`` and its bases breadth-first, each once, mirrors moved to the end.

    Missing names are skipped (a base may have been deleted) and the ``seen`` set makes cycles
    terminate. An unknown ``start`` gives an empty order.
    """
    if start not in nodes:
        return ()
    seen = {start}
    queue = deque([start])
    order: list[str] = []
    while queue:
        name = queue.popleft()
        order.append(name)
        for base in nodes[name].bases:
            if base not in seen and base in nodes:
                seen.add(base)
                queue.append(base)
    stages = [name for name in order if not nodes[name].is_mirror]
    mirrors = [name for name in order if nodes[name].is_mirror]
    return (*stages, *mirrors)


@dataclass(frozen=True, slots=True)
class MirrorDecision:
    """Whether mirror stages may contribute files for a project, and why (for logs)."""

    use_mirrors: bool
    reason: str


def mirror_decision(
    project: str,
    start: str,
    order: Sequence[str],
    nodes: Mapping[str, IndexNode],
    has_project: Callable[[str], bool],
) -> MirrorDecision:
    """Decide whether the mirrors in ``order`` may serve ``project`` to index ``start``.

    Walking the non-mirror stages of ``order``, each one's ``mirror_whitelist`` is merged into a
    running set: the first initialises it, later ones are added ("union") or intersected
    ("intersection"), as the *requested* index (``start``) says. A stage that has the project
    (``has_project(fullname)``) must find it, or ``*``, in the running set right after its own
    whitelist was merged; otherwise the mirrors are skipped.

    §7 leaves two points open; both are resolved towards hiding the mirrors:

    - The check happens at each stage that has the project, with the set as it is there, so a
      whitelist further down the order never covers a private project higher up (with "union",
      devpi may count it), and a later intersection that drops the name hides the mirrors again
      for a project on that later stage.
    - An unknown ``start`` or an inheritance other than "union" counts as "intersection", the
      narrower rule.

    ``*`` stands for every name, also when intersecting: ``{*}`` and ``{six}`` leave ``{six}``,
    since both stages allow six (a literal intersection would make ``*`` useless on a child).
    """
    name = normalize_project_name(project)
    start_node = nodes.get(start)
    union = start_node is not None and start_node.whitelist_inheritance == "union"
    running: set[str] | None = None
    first_listed: dict[str, str] = {}  # whitelist entry -> first stage that listed it
    allowed_by: str | None = None
    for fullname in order:
        node = nodes.get(fullname)
        if node is None or node.is_mirror:
            continue
        for entry in node.mirror_whitelist:
            first_listed.setdefault(entry, fullname)
        if running is None:
            running = set(node.mirror_whitelist)
        elif union:
            running |= node.mirror_whitelist
        else:
            running = _intersect(running, node.mirror_whitelist)
        if not has_project(fullname):
            continue
        allowing = name if name in running else WILDCARD if WILDCARD in running else None
        if allowing is None:
            return MirrorDecision(
                False, f"local project '{name}' on {fullname} hides mirror files (not whitelisted)"
            )
        allowed_by = allowed_by or f"whitelisted by '{allowing}' on {first_listed[allowing]}"
    return MirrorDecision(True, allowed_by or "no stage has the project")


def _intersect(running: set[str], whitelist: frozenset[str]) -> set[str]:
    """Intersect two whitelists where ``*`` stands for every name, so ``{*} & {six} == {six}``."""
    if WILDCARD in running:
        return running | whitelist if WILDCARD in whitelist else set(whitelist)
    return running if WILDCARD in whitelist else running & whitelist


def merge_by_filename(
    groups: Iterable[tuple[str, Sequence[T]]], filename: Callable[[T], str]
) -> list[T]:
    """Concatenate per-stage items in sro order; the first item with a filename wins.

    The first string of each group names the stage; it only documents the caller's intent.
    """
    seen: set[str] = set()
    merged: list[T] = []
    for _stage, items in groups:
        for item in items:
            key = filename(item)
            if key not in seen:
                seen.add(key)
                merged.append(item)
    return merged
