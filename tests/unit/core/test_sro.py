"""Stage resolution order, the dependency-confusion whitelist and link merging."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheeseboard.core.indexconfig import new_index_config
from cheeseboard.core.sro import (
    IndexNode,
    MirrorDecision,
    merge_by_filename,
    mirror_decision,
    resolution_order,
)

PYPI = "root/pypi"
STABLE = "local/stable"
CHILD = "local/child"
PROPERTY = settings(database=None, max_examples=200, deadline=None)


def stage(
    name: str, *bases: str, whitelist: Iterable[str] = (), inherit: str = "intersection"
) -> IndexNode:
    """A stage node named ``name`` with the given bases and whitelist."""
    return IndexNode(name, False, bases, frozenset(whitelist), inherit)


def mirror_node(name: str = PYPI) -> IndexNode:
    """A mirror node."""
    return IndexNode(name, True, (), frozenset(), "intersection")


def graph(*nodes: IndexNode) -> dict[str, IndexNode]:
    """Index the nodes by name."""
    return {node.fullname: node for node in nodes}


# --- resolution order ---------------------------------------------------------------------


def test_single_index() -> None:
    """An index without bases resolves to itself."""
    assert resolution_order("a/a", graph(stage("a/a"))) == ("a/a",)


def test_chain() -> None:
    """Bases of bases follow in order."""
    nodes = graph(stage("a/a", "b/b"), stage("b/b", "c/c"), stage("c/c"))
    assert resolution_order("a/a", nodes) == ("a/a", "b/b", "c/c")


def test_breadth_first_not_depth_first() -> None:
    """All direct bases come before the bases of bases."""
    nodes = graph(stage("a/a", "b/b", "c/c"), stage("b/b", "d/d"), stage("c/c"), stage("d/d"))
    assert resolution_order("a/a", nodes) == ("a/a", "b/b", "c/c", "d/d")


def test_diamond_lists_shared_base_once() -> None:
    """A base reached along two paths appears once, at its first place."""
    nodes = graph(
        stage("a/a", "b/b", "c/c"), stage("b/b", "d/d"), stage("c/c", "d/d"), stage("d/d")
    )
    assert resolution_order("a/a", nodes) == ("a/a", "b/b", "c/c", "d/d")


@pytest.mark.parametrize(
    "nodes",
    [
        graph(stage("a/a", "b/b"), stage("b/b", "a/a")),
        graph(stage("a/a", "a/a", "b/b"), stage("b/b", "b/b", "a/a")),
    ],
)
def test_cycles_terminate(nodes: dict[str, IndexNode]) -> None:
    """Cycles (also self-loops) end the walk instead of looping."""
    assert resolution_order("a/a", nodes) == ("a/a", "b/b")


def test_missing_bases_are_skipped() -> None:
    """A deleted base is left out; the rest still resolves."""
    nodes = graph(stage("a/a", "gone/x", "b/b"), stage("b/b"))
    assert resolution_order("a/a", nodes) == ("a/a", "b/b")


def test_unknown_start_is_empty() -> None:
    """An index that doesn't exist has no order."""
    assert resolution_order("nobody/x", graph(stage("a/a"))) == ()


def test_mirrors_last_in_relative_order() -> None:
    """Mirrors move behind every stage, keeping the order they were reached in."""
    nodes = graph(
        stage("a/a", "m/one", "b/b"),
        stage("b/b", "m/two", "c/c"),
        stage("c/c"),
        mirror_node("m/one"),
        mirror_node("m/two"),
    )
    assert resolution_order("a/a", nodes) == ("a/a", "b/b", "c/c", "m/one", "m/two")


def test_mirror_alone() -> None:
    """A mirror resolves to itself."""
    assert resolution_order(PYPI, graph(mirror_node())) == (PYPI,)


NAMES = [f"u/{i}" for i in range(6)]


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(NAMES),
        st.tuples(st.booleans(), st.lists(st.sampled_from([*NAMES, "gone/x"]), max_size=4)),
        min_size=1,
    ),
    st.sampled_from(NAMES),
)
def test_order_properties(spec: dict[str, tuple[bool, list[str]]], start: str) -> None:
    """Any graph: each name once, only known names, stages before mirrors, start first."""
    nodes = {name: IndexNode(name, m, tuple(bases)) for name, (m, bases) in spec.items()}
    order = resolution_order(start, nodes)
    assert len(order) == len(set(order))
    assert set(order) <= set(nodes)
    kinds = [nodes[name].is_mirror for name in order]
    assert kinds == sorted(kinds)
    if start in nodes and not nodes[start].is_mirror:
        assert order[0] == start
    assert (start in order) == (start in nodes)


# --- whitelist ----------------------------------------------------------------------------


def decide(
    start: str, nodes: dict[str, IndexNode], holders: Iterable[str], project: str = "six"
) -> MirrorDecision:
    """Decide for ``project`` on ``start`` when the stages in ``holders`` have it."""
    having = set(holders)

    def has_project(fullname: str) -> bool:
        assert not nodes[fullname].is_mirror, "mirrors are never asked"
        return fullname in having

    return mirror_decision(project, start, resolution_order(start, nodes), nodes, has_project)


def seed(
    stable_whitelist: Iterable[str] = (),
    whitelist: Iterable[str] = (),
    inherit: str = "intersection",
) -> dict[str, IndexNode]:
    """root/pypi <- local/stable <- local/child (child's whitelist and inheritance given)."""
    return graph(
        mirror_node(),
        stage(STABLE, PYPI, whitelist=stable_whitelist),
        stage(CHILD, STABLE, whitelist=whitelist, inherit=inherit),
    )


def test_private_project_hides_mirror() -> None:
    """Private six on local/stable hides all mirror six files."""
    decision = decide(STABLE, seed(), [STABLE])
    assert decision == MirrorDecision(
        False, "local project 'six' on local/stable hides mirror files (not whitelisted)"
    )


def test_whitelisted_project_shows_mirror() -> None:
    """After mirror_whitelist=six on local/stable the mirror files show."""
    decision = decide(STABLE, seed(["six"]), [STABLE])
    assert decision == MirrorDecision(True, "whitelisted by 'six' on local/stable")


def test_child_with_empty_whitelist_hides_again() -> None:
    """A child with an empty whitelist (intersection) hides the mirror again."""
    decision = decide(CHILD, seed(["six"]), [STABLE])
    assert not decision.use_mirrors
    assert "on local/stable" in decision.reason


def test_child_with_union_shows() -> None:
    """With union on the child, the base's whitelist applies."""
    decision = decide(CHILD, seed(["six"], inherit="union"), [STABLE])
    assert decision == MirrorDecision(True, "whitelisted by 'six' on local/stable")


def test_wildcard_whitelists_everything() -> None:
    """'*' whitelists every project."""
    decision = decide(STABLE, seed(["*"]), [STABLE], project="anything")
    assert decision == MirrorDecision(True, "whitelisted by '*' on local/stable")


def test_wildcard_on_child_intersects_to_base_whitelist() -> None:
    """'*' on the child intersected with the base's whitelist leaves the base's names."""
    nodes = seed(["six"], whitelist=["*"])
    assert decide(CHILD, nodes, [STABLE]).use_mirrors
    assert not decide(CHILD, nodes, [STABLE], project="other").use_mirrors


def test_wildcard_on_base_keeps_child_names() -> None:
    """'*' on the base keeps what the child lists; '*' on both keeps everything."""
    assert decide(CHILD, seed(["*"], whitelist=["six"]), [STABLE]).use_mirrors
    assert not decide(CHILD, seed(["*"], whitelist=["x"]), [STABLE]).use_mirrors
    both = seed(["*", "a"], whitelist=["*"])
    assert decide(CHILD, both, [STABLE], project="other") == MirrorDecision(
        True, "whitelisted by '*' on local/child"
    )


def test_project_on_no_stage_uses_mirrors() -> None:
    """A name no stage holds comes from the mirrors."""
    assert decide(CHILD, seed(), []) == MirrorDecision(True, "no stage has the project")


def test_project_name_is_normalized() -> None:
    """The requested name is compared in PEP 503 form."""
    assert decide(STABLE, seed(["six"]), [STABLE], project="SIX").use_mirrors


def test_intersection_only_shrinks() -> None:
    """A whitelist at the top doesn't cover a private project on a base that doesn't list it."""
    nodes = graph(mirror_node(), stage(STABLE, PYPI), stage(CHILD, STABLE, whitelist=["six"]))
    assert not decide(CHILD, nodes, [STABLE]).use_mirrors


def test_union_whitelist_below_does_not_cover_project_above() -> None:
    """Safety: a base's whitelist doesn't whitelist a private project on the child above it."""
    nodes = graph(
        mirror_node(),
        stage(STABLE, PYPI, whitelist=["six"]),
        stage(CHILD, STABLE, inherit="union"),
    )
    decision = decide(CHILD, nodes, [CHILD, STABLE])
    assert decision == MirrorDecision(
        False, "local project 'six' on local/child hides mirror files (not whitelisted)"
    )


def test_every_holding_stage_must_be_whitelisted() -> None:
    """With union, a project on both stages needs the whitelist by the first holder."""
    nodes = seed(["six"], whitelist=["six"], inherit="union")
    assert decide(CHILD, nodes, [CHILD, STABLE]) == MirrorDecision(
        True, "whitelisted by 'six' on local/child"
    )


def test_inheritance_of_requested_index_decides() -> None:
    """The base's own union setting doesn't matter when the child asks."""
    nodes = graph(
        mirror_node(),
        stage(STABLE, PYPI, whitelist=["six"], inherit="union"),
        stage(CHILD, STABLE),
    )
    assert not decide(CHILD, nodes, [STABLE]).use_mirrors


@pytest.mark.parametrize("inherit", ["", "bogus", "UNION"])
def test_unknown_inheritance_counts_as_intersection(inherit: str) -> None:
    """Anything but exactly 'union' takes the narrower rule."""
    assert not decide(CHILD, seed(["six"], inherit=inherit), [STABLE]).use_mirrors


def test_unknown_start_counts_as_intersection() -> None:
    """Without the requested index's node the narrower rule applies."""
    nodes = seed(["six"], inherit="union")
    order = (CHILD, STABLE, PYPI)
    del nodes[CHILD]
    decision = mirror_decision("six", CHILD, order, nodes, lambda name: name == STABLE)
    assert decision.use_mirrors  # child missing: stable's own whitelist initialises the set


# --- nodes from stored configs ------------------------------------------------------------


def test_node_from_stage_config() -> None:
    """A stored stage config becomes a node with its bases and whitelist."""
    config = new_index_config(
        "local",
        {"bases": "root/pypi", "mirror_whitelist": "Six,*"},
        lambda _: True,
        fullname=STABLE,
    )
    assert IndexNode.from_config(STABLE, config) == IndexNode(
        STABLE, False, (PYPI,), frozenset({"six", "*"}), "intersection"
    )


def test_node_from_mirror_config() -> None:
    """A mirror config becomes a mirror node without bases or whitelist."""
    config = {"type": "mirror", "volatile": False, "mirror_url": "https://pypi.org/simple/"}
    node = IndexNode.from_config(PYPI, config)
    assert (node.is_mirror, node.bases, node.mirror_whitelist) == (True, (), frozenset())


def test_node_without_inheritance_is_union() -> None:
    """Configs from before the setting existed inherit by union, as in devpi."""
    node = IndexNode.from_config(CHILD, {"type": "stage", "bases": [STABLE]})
    assert node.whitelist_inheritance == "union"
    assert node.mirror_whitelist == frozenset()


# --- merging ------------------------------------------------------------------------------


def test_merge_first_filename_wins() -> None:
    """Items are concatenated in sro order and a later duplicate filename is dropped."""
    groups = [
        (STABLE, [("a-1.tar.gz", "stable"), ("a-2.tar.gz", "stable")]),
        (PYPI, [("a-2.tar.gz", "pypi"), ("a-0.tar.gz", "pypi")]),
    ]
    assert merge_by_filename(groups, lambda item: item[0]) == [
        ("a-1.tar.gz", "stable"),
        ("a-2.tar.gz", "stable"),
        ("a-0.tar.gz", "pypi"),
    ]


def test_merge_empty_and_duplicates_within_group() -> None:
    """No groups give nothing; a repeat within one group is dropped too."""
    assert merge_by_filename([], str) == []
    assert merge_by_filename([("x/y", ["f", "f", "g"]), ("z/w", [])], str) == ["f", "g"]
