"""The cookie carrying an OIDC sign-in's groups: read back only with the session token it was
sealed for, unchanged, and bounded in size."""

from __future__ import annotations

from cheeseboard.core.tokens import TokenSigner
from cheeseboard.services import session_groups


def test_groups_open_only_for_their_session_and_unchanged() -> None:
    signer = TokenSigner(b"k" * 32)
    value, kept = session_groups.seal(signer, "token-a", frozenset({"devs", "ops"}))
    assert kept == 2
    assert session_groups.opened(signer, "token-a", value) == {"devs", "ops"}
    assert session_groups.opened(signer, "token-b", value) == frozenset()  # another session
    mac = value.rpartition(".")[2]
    forged, _ = session_groups.seal(signer, "token-a", frozenset({"admins"}))
    assert session_groups.opened(signer, "token-a", f"{forged.split('.')[0]}.{mac}") == set()
    assert session_groups.opened(TokenSigner(b"x" * 32), "token-a", value) == frozenset()
    for junk in (None, "", "no-dot", "a.b", "." * 5000):
        assert session_groups.opened(signer, "token-a", junk) == frozenset()


def test_many_groups_are_cut_to_what_a_cookie_holds() -> None:
    signer = TokenSigner(b"k" * 32)
    groups = frozenset(f"group-{i:03d}-" + "x" * 50 for i in range(100))
    value, kept = session_groups.seal(signer, "t", groups)
    assert len(value) <= session_groups.MAX_GROUPS_COOKIE and 0 < kept < 100
    assert session_groups.opened(signer, "t", value) == set(sorted(groups)[:kept])
