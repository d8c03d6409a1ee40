"""The benchmark's package data set, built offline with ``tests/support/packages.py``.

Two copies of one 15-project dependency tree (``ba-*`` and ``bb-*``) so that both
installers can be measured against a cold server in one server lifetime: uv installs
``ba-app`` first, pip installs ``bb-app`` next, and neither finds the other's projects
cached.  Plus one large project (2,000 files: 200 versions x 10 platform wheels) for
the big simple page, one small project (3 files) for the small page and the small
file, and one project with a single 16 MiB incompressible wheel (numpy-sized) for
large-file throughput.

:func:`write_static_mirror` lays the same files out as a static PEP 503 tree, which
nginx serves as the baseline of the comparison.
"""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.support.packages import Dist, build_sdist, build_wheel, normalize

# project -> direct dependencies; 15 projects, three levels below the app.
TREE: dict[str, tuple[str, ...]] = {
    "app": ("web", "db", "cli", "util"),
    "web": ("http", "template", "log"),
    "db": ("orm", "pool", "log"),
    "cli": ("color", "args"),
    "util": ("dates", "text"),
    "http": ("codec",),
    "template": ("text",),
    "orm": ("codec", "dates"),
    "pool": (),
    "color": (),
    "args": ("text",),
    "dates": (),
    "text": (),
    "codec": (),
    "log": (),
}
VERSIONS = ("1.0.0", "1.1.0", "2.0.0")
TREE_PREFIXES = ("ba", "bb")  # ba-*: uv cold + all warm runs; bb-*: pip cold

LARGE_PROJECT = "bench-large"
LARGE_VERSIONS = 200
LARGE_TAGS = (
    ("cp39", "cp39", "manylinux_2_17_x86_64"),
    ("cp310", "cp310", "manylinux_2_17_x86_64"),
    ("cp311", "cp311", "manylinux_2_17_x86_64"),
    ("cp312", "cp312", "manylinux_2_17_x86_64"),
    ("cp312", "cp312", "manylinux_2_17_aarch64"),
    ("cp312", "cp312", "musllinux_1_2_x86_64"),
    ("cp312", "cp312", "macosx_11_0_arm64"),
    ("cp312", "cp312", "macosx_10_9_x86_64"),
    ("cp312", "cp312", "win_amd64"),
    ("cp313", "cp313", "manylinux_2_17_x86_64"),
)
SMALL_PROJECT = "bench-small"
SMALL_FILE = "bench_small-1.1.0-py3-none-any.whl"  # the small-file load target (~1 KB)
HUGE_PROJECT = "bench-huge"
HUGE_FILE = "bench_huge-1.0.0-py3-none-any.whl"  # the large-file load target
HUGE_PAYLOAD = 16 * 1024 * 1024

MIN_PAYLOAD = 50 * 1024
MAX_PAYLOAD = 500 * 1024


@dataclass(frozen=True)
class Item:
    """One file to publish upstream, with the upload metadata the page shows."""

    dist: Dist
    upload_time: str
    yanked: str | None = None


def app_name(prefix: str) -> str:
    """The root project of one copy of the tree, the thing the installers ask for."""
    return f"{prefix}-app"


def _payload_size(name: str, version: str) -> int:
    """Deterministic size in [50 KiB, 500 KiB] so files differ but runs repeat exactly."""
    digest = hashlib.sha256(f"{name}=={version}".encode()).digest()
    span = MAX_PAYLOAD - MIN_PAYLOAD
    return MIN_PAYLOAD + int.from_bytes(digest[:4], "big") % span


def _tree(dest: Path, prefix: str) -> Iterator[Item]:
    for index, (short, deps) in enumerate(TREE.items()):
        name = f"{prefix}-{short}"
        for vi, version in enumerate(VERSIONS):
            reqs = [f"{prefix}-{d}>=1.0" for d in deps]
            size = _payload_size(name, version)
            stamp = f"2024-0{vi + 1}-{index + 1:02d}T12:00:00.000000Z"
            for builder in (build_wheel, build_sdist):
                dist = builder(
                    dest,
                    name,
                    version,
                    requires_dist=reqs,
                    requires_python=">=3.8",
                    payload_size=size,
                )
                yield Item(dist, stamp)


def _large(dest: Path) -> Iterator[Item]:
    for i in range(LARGE_VERSIONS):
        version = f"{i // 20}.{i % 20}.0"
        stamp = f"20{10 + i // 20}-01-{1 + i % 20:02d}T00:00:00.000000Z"
        # A few yanked releases so data-yanked/"yanked" is exercised on the big page.
        yanked = "broken build" if i % 50 == 49 else None
        for py, abi, plat in LARGE_TAGS:
            dist = build_wheel(
                dest,
                LARGE_PROJECT,
                version,
                python_tag=py,
                abi_tag=abi,
                platform_tag=plat,
                requires_python=">=3.9",
            )
            yield Item(dist, stamp, yanked)


def _small(dest: Path) -> Iterator[Item]:
    stamp = "2024-05-01T00:00:00.000000Z"
    yield Item(build_wheel(dest, SMALL_PROJECT, "1.0.0"), stamp)
    yield Item(build_sdist(dest, SMALL_PROJECT, "1.0.0"), stamp)
    yield Item(build_wheel(dest, SMALL_PROJECT, "1.1.0"), "2024-06-01T00:00:00.000000Z")


def _huge(dest: Path) -> Iterator[Item]:
    # Random payload, so the wheel stays ~16 MiB on the wire whatever compresses it.
    dist = build_wheel(dest, HUGE_PROJECT, "1.0.0", payload_size=HUGE_PAYLOAD)
    yield Item(dist, "2024-07-01T00:00:00.000000Z")


def build(dest: Path) -> list[Item]:
    """Write every file of the data set under ``dest`` (deterministic bytes)."""
    items: list[Item] = []
    for prefix in TREE_PREFIXES:
        items.extend(_tree(dest / prefix, prefix))
    items.extend(_large(dest / "large"))
    items.extend(_small(dest / "small"))
    items.extend(_huge(dest / "huge"))
    return items


def _page(title: str, links: list[str]) -> bytes:
    body = "".join(f"{link}<br/>\n" for link in links)
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head>"
        f"<body><h1>{title}</h1>\n{body}</body></html>\n"
    ).encode()


def _anchor(item: Item) -> str:
    dist = item.dist
    attrs = [f'href="../../files/{quote(dist.filename)}#sha256={dist.sha256}"']
    if dist.requires_python is not None:
        attrs.append(f'data-requires-python="{html.escape(dist.requires_python)}"')
    if item.yanked is not None:
        attrs.append(f'data-yanked="{html.escape(item.yanked)}"')
    return f"<a {' '.join(attrs)}>{html.escape(dist.filename)}</a>"


def write_static_mirror(items: list[Item], root: Path) -> None:
    """Lay ``items`` out under ``root`` as a static PEP 503 index.

    ``root/simple/index.html`` lists the projects, ``root/simple/<project>/index.html``
    links each file (same attributes as the HTML-only upstream: sha256 fragment,
    data-requires-python, data-yanked), and ``root/files/<filename>`` holds the files
    as hard links to the built ones (copies if the file system refuses).  Served by
    nginx, the index URL is ``http://host:port/simple/``.
    """
    by_project: dict[str, list[Item]] = {}
    for item in items:
        by_project.setdefault(normalize(item.dist.name), []).append(item)
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    for item in items:
        target = files / item.dist.filename
        try:
            os.link(item.dist.path, target)
        except OSError:
            target.write_bytes(item.dist.path.read_bytes())
    simple = root / "simple"
    for project, project_items in by_project.items():
        (simple / project).mkdir(parents=True, exist_ok=True)
        page = _page(f"Links for {html.escape(project)}", [_anchor(i) for i in project_items])
        (simple / project / "index.html").write_bytes(page)
    listing = [f'<a href="{quote(p)}/">{html.escape(p)}</a>' for p in sorted(by_project)]
    (simple / "index.html").write_bytes(_page("Simple index", listing))
