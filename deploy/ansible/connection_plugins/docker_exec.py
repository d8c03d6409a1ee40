"""Ansible connection to a running container through ``docker exec`` (no sshd in the target).

ansible-core has no Docker connection, and community.docker is a large collection that
ansible-galaxy may not be able to fetch; this is the small part of it a deploy needs: run a command,
copy a file in, copy one out. The container's name is the host's ``ansible_host``. Tasks run as
the container's root; ``become`` is not supported.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

DOCUMENTATION = """
    name: docker_exec
    short_description: run tasks in a running container through docker exec
    description:
        - Runs commands with C(docker exec) in the container named by ansible_host, as its root.
    author: cheeseboard
    options:
        remote_addr:
            description: name or id of the container
            default: inventory_hostname
            vars:
                - name: inventory_hostname
                - name: ansible_host
        docker_binary:
            description: the docker CLI (its engine comes from DOCKER_HOST as usual)
            default: docker
            env:
                - name: ANSIBLE_DOCKER_EXEC_BINARY
            vars:
                - name: ansible_docker_exec_binary
    extends_documentation_fragment:
        - connection_pipelining
"""

display = Display()
COMMAND_TIMEOUT = 600  # seconds; one module run, never a whole play


class Connection(ConnectionBase):
    """Each call is one ``docker exec``; there is no session to keep open."""

    transport = "docker_exec"
    has_pipelining = True

    def _docker(self) -> list[str]:
        return [str(self.get_option("docker_binary"))]

    def _container(self) -> str:
        return str(self.get_option("remote_addr"))

    def _connect(self) -> Connection:
        if not self._connected:
            probe = self._run(["inspect", "--format", "{{.State.Running}}", self._container()])
            if probe.returncode != 0 or probe.stdout.strip() != b"true":
                raise AnsibleConnectionFailure(
                    f"container {self._container()!r} is not running: {probe.stderr.decode()}"
                )
            self._connected = True
        return self

    def _run(
        self, args: list[str], stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [*self._docker(), *args],
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise AnsibleConnectionFailure(f"docker {args[0]} failed: {error}") from error

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"EXEC {cmd}", host=self._container())
        result = self._run(["exec", "-i", self._container(), "/bin/sh", "-c", cmd], in_data)
        return result.returncode, result.stdout, result.stderr

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self._container())
        if not os.path.isfile(in_path):
            raise AnsibleFileNotFound(f"file to copy does not exist: {in_path}")
        with open(in_path, "rb") as source:
            data = source.read()
        script = f"cat > {shlex.quote(out_path)}"
        result = self._run(["exec", "-i", self._container(), "/bin/sh", "-c", script], data)
        if result.returncode != 0:
            raise AnsibleError(f"copying to {out_path} failed: {result.stderr.decode()}")

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self._container())
        result = self._run(["exec", self._container(), "cat", in_path])
        if result.returncode != 0:
            raise AnsibleError(f"reading {in_path} failed: {result.stderr.decode()}")
        with open(out_path, "wb") as target:
            target.write(result.stdout)

    def close(self) -> None:
        self._connected = False

    def reset(self, *args: Any, **kwargs: Any) -> None:
        self.close()
