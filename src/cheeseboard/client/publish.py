"""``upload``: send wheels, sdists and doc zips, building the current project when asked."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cheeseboard.client.commands import client
from cheeseboard.client.config import ClientConfig
from cheeseboard.client.console import Output
from cheeseboard.client.http import ClientError, HttpClient
from cheeseboard.client.upload import Artifact, MultipartBody, collect, sha256_of, upload_form
from cheeseboard.progress import transfer_progress


def build_project(project: Path, outdir: Path, isolation: bool, out: Output) -> list[Path]:
    """Run ``python -m build`` (sdist and wheel) on ``project``; the built files."""
    if not (project / "pyproject.toml").exists() and not (project / "setup.py").exists():
        raise ClientError(
            f"{project} is not a Python project (no pyproject.toml or setup.py)",
            "pass files or a dist/ directory to upload, or run in a project directory",
        )
    command = [sys.executable, "-m", "build", "--outdir", str(outdir)]
    if not isolation:
        command.append("--no-isolation")
    out.info(f"building {project} ...")
    result = subprocess.run([*command, str(project)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ClientError(f"building {project} failed:\n{tail}", "fix the build, then run again")
    return sorted(path for path in outdir.iterdir() if path.is_file())


def upload(
    config: ClientConfig,
    out: Output,
    paths: list[Path],
    project: Path | None = None,
    isolation: bool = True,
) -> None:
    """Upload the given files (or the project built from ``project``) to the current index."""
    index = config.require_index()
    api = client(config)
    if paths:
        artifacts = collect(paths)
        _send_all(api, out, index, artifacts)
    else:
        built = Path(tempfile.mkdtemp(prefix="cheeseboard-build-"))
        try:
            files = build_project(project or Path.cwd(), built, isolation, out)
            artifacts = collect(files)
            _send_all(api, out, index, artifacts)
        finally:
            shutil.rmtree(built, ignore_errors=True)
    names = [a.path.name for a in artifacts]
    out.success(f"uploaded {len(names)} file(s) to {index}", {"index": index, "files": names})


def _send_all(api: HttpClient, out: Output, index: str, artifacts: list[Artifact]) -> None:
    """Distributions first, doc zips last (a doc zip needs its release to exist)."""
    for artifact in sorted(artifacts, key=lambda a: a.filetype == "doc"):
        form = upload_form(artifact, sha256_of(artifact.path))
        if out.interactive:
            with transfer_progress(out.console) as progress:
                task = progress.add_task(artifact.path.name, total=artifact.path.stat().st_size)
                advance = functools.partial(progress.advance, task)
                _post(api, index, MultipartBody(form, "content", artifact.path, advance))
        else:
            _post(api, index, MultipartBody(form, "content", artifact.path))
        out.info(f"uploaded {artifact.path.name}")


def _post(api: HttpClient, index: str, body: MultipartBody) -> None:
    headers = api.headers()
    headers["Content-Type"] = body.content_type
    headers["Content-Length"] = str(len(body))
    api.stream("POST", f"{index}/", iter(body), headers)
