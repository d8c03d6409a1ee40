"""Pack a wheelhouse directory into one reproducible tar (on the controller).

One file copies to the target in one step, where a directory costs Ansible a round trip per
file; the same wheels always give the same bytes, so an unchanged wheelhouse is not copied again.
Usage: pack_wheels.py WHEELHOUSE ARCHIVE (ARCHIVE is rewritten only when its content changes).
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path


def pack(source: Path) -> bytes:
    wheels = sorted(
        p for p in source.iterdir() if p.is_file() and p.suffix in (".whl", ".gz", ".zip")
    )
    if not wheels:
        raise SystemExit(f"no wheels or sdists in {source}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in wheels:
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mode = 0o644
            with path.open("rb") as data:
                archive.addfile(info, data)
    return buffer.getvalue()


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    if not source.is_dir():
        raise SystemExit(f"cheeseboard_wheelhouse {source} is not a directory")
    content = pack(source)
    if not target.is_file() or target.read_bytes() != content:
        target.write_bytes(content)


if __name__ == "__main__":
    main()
