"""A real OpenLDAP ``slapd`` for the LDAP tests: Debian's package, started on a free loopback
port with a generated ``slapd.conf`` in a temporary directory and seeded with ``ldapadd``.

The directory (``dc=example,dc=org``): people ``alice`` and ``bob`` (enabled), ``carol``
(``description: disabled``: the tests' filters leave her out), groups ``devs`` (alice) and
``ops`` (bob) as ``groupOfNames``. ``cn=admin`` is the bind DN of bind-and-search.

Options: ``tls`` (a throwaway CA from tests/support/certs.py) serves its server certificate on
``ldaps_url`` and for StartTLS on ``url``; ``memberof`` loads the memberof overlay, so that
people get ``memberOf`` values naming their groups (the seed adds the groups after the people).
slapd logs every connection and operation (``-d stats``) to ``log()``: tests see what reached
it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.certs import ThrowawayCA
from tests.support.process import ManagedProcess
from tests.support.server import free_port
from tests.support.services import service_missing

SLAPD = Path("/usr/sbin/slapd")
SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-ldap-pw"
PASSWORDS = {"alice": "alice-ldap-pw", "bob": "bob-ldap-pw", "carol": "carol-ldap-pw"}
ENABLED_USERS = "(&(uid={username})(!(description=disabled)))"
"""The user filter of the tests' bind-and-search configs: people not marked disabled."""
GROUP_SEARCH = {
    "base": f"ou=groups,{SUFFIX}",
    "filter": "(member={userdn})",
    "attribute_name": "cn",
}
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")

_CONF = """\
{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
{modules}pidfile {dir}/slapd.pid
{tls}database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{admin}"
rootpw {password}
directory {dir}/db
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
{overlays}"""


def _person(name: str, disabled: bool = False) -> str:
    note = "description: disabled\n" if disabled else ""
    return (
        f"dn: uid={name},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {name}\n"
        f"cn: {name.title()}\nsn: {name.title()}\nuserPassword: {PASSWORDS[name]}\n{note}\n"
    )


def _group(name: str, *members: str) -> str:
    lines = "".join(f"member: uid={m},ou=people,{SUFFIX}\n" for m in members)
    return f"dn: cn={name},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {name}\n{lines}\n"


SEED = (
    f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
    f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
    f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    + _person("alice")
    + _person("bob")
    + _person("carol", disabled=True)
    + _group("devs", "alice")
    + _group("ops", "bob")
)


class Slapd:
    """One slapd over one directory; ``stop`` and ``start`` keep its data."""

    def __init__(self, base: Path, tls: ThrowawayCA | None = None, memberof: bool = False) -> None:
        if not SLAPD.exists() or shutil.which("ldapadd") is None:
            service_missing(
                "slapd and ldap-utils are not installed (apt-get install slapd ldap-utils)"
            )
        self.base = base
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{free_port()}" if tls is not None else None
        (base / "db").mkdir(parents=True, exist_ok=True)
        includes = "\n".join(f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS)
        tls_lines = ""
        if tls is not None:
            tls_lines = (
                f"TLSCACertificateFile {tls.ca_pem}\nTLSCertificateFile {tls.server_pem}\n"
                f"TLSCertificateKeyFile {tls.server_key}\n"
            )
        conf = _CONF.format(
            includes=includes,
            modules="moduleload memberof\n" if memberof else "",
            tls=tls_lines,
            dir=base,
            suffix=SUFFIX,
            admin=ADMIN_DN,
            password=ADMIN_PASSWORD,
            overlays="overlay memberof\n" if memberof else "",
        )
        (base / "slapd.conf").write_text(conf)
        self.managed: ManagedProcess | None = None

    def start(self) -> None:
        listen = " ".join(f"{url}/" for url in (self.url, self.ldaps_url) if url)
        command = [str(SLAPD), "-f", str(self.base / "slapd.conf"), "-h", listen, "-d", "stats"]
        self.managed = ManagedProcess(command, name="slapd", log_path=self.base / "slapd.log")
        self.managed.start()
        deadline = time.monotonic() + 20
        while self.ldap("ldapwhoami", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"slapd did not answer:\n{self.managed.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.managed is not None:
            self.managed.stop()
        self.managed = None

    def log(self) -> str:
        """What slapd wrote (``-d stats``: one line per connection and operation)."""
        path = self.base / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def seed(self) -> None:
        self.ldap("ldapadd", stdin=SEED)

    def modify(self, ldif: str) -> None:
        self.ldap("ldapmodify", stdin=ldif)

    def ldap(
        self, tool: str, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [tool, "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, *args]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr}")
        return result


@contextmanager
def seeded_slapd(
    base: Path, tls: ThrowawayCA | None = None, memberof: bool = False
) -> Iterator[Slapd]:
    """A started slapd holding the seed entries, stopped on exit."""
    server = Slapd(base, tls=tls, memberof=memberof)
    server.start()
    try:
        server.seed()
        yield server
    finally:
        server.stop()


def search_config(url: str, **extra: object) -> dict[str, object]:
    """An ``ldap:`` section that binds as the admin and searches people and groups."""
    return {
        "url": url,
        "bind_dn": ADMIN_DN,
        "bind_password": ADMIN_PASSWORD,
        "user_search": {"base": f"ou=people,{SUFFIX}", "filter": ENABLED_USERS},
        "group_search": GROUP_SEARCH,
        "timeout": 3,
        **extra,
    }
