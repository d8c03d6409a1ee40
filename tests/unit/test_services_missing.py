"""``service_missing``: a skip on a developer machine, a failure under CHEESEBOARD_REQUIRE_ALL=1."""

from __future__ import annotations

import pytest

from tests.support.services import REQUIRE_ALL_ENV, require_all, service_missing


@pytest.mark.parametrize("value", [None, "", "0", "yes"])
def test_skips_unless_required(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """Without CHEESEBOARD_REQUIRE_ALL=1 (exactly), a missing service skips with its reason."""
    if value is None:
        monkeypatch.delenv(REQUIRE_ALL_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_ALL_ENV, value)
    assert not require_all()
    with pytest.raises(pytest.skip.Exception, match="no engine at /x"):
        service_missing("no engine at /x")


def test_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CHEESEBOARD_REQUIRE_ALL=1 the same call fails the test, naming reason and variable."""
    monkeypatch.setenv(REQUIRE_ALL_ENV, "1")
    assert require_all()
    with pytest.raises(pytest.fail.Exception) as failure:
        service_missing("no engine at /x")
    assert "no engine at /x" in str(failure.value)
    assert REQUIRE_ALL_ENV in str(failure.value)
