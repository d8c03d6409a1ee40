"""``--oidc-issuers`` and ``--oidc-audience``: from every source, and checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheeseboard.settings import Settings, SettingsError, resolve


def test_issuers_from_the_config_file_list_and_the_environment(tmp_path: Path) -> None:
    """A YAML list or a comma-separated variable; trailing slashes dropped; JSON round trip."""
    config = tmp_path / "server.yaml"
    config.write_text(
        "oidc_issuers:\n  - https://token.actions.githubusercontent.com/\n"
        "  - https://gitlab.example.com\noidc_audience: pkgs.example.com\n"
    )
    settings = resolve({"datadir": str(tmp_path)}, {}, config)
    assert settings.oidc_issuers == (
        "https://token.actions.githubusercontent.com",
        "https://gitlab.example.com",
    )
    assert settings.oidc_audience == "pkgs.example.com"
    assert Settings.from_json(settings.to_json()).oidc_issuers == settings.oidc_issuers
    env = {"CHEESEBOARD_OIDC_ISSUERS": "https://gitlab.com,http://127.0.0.1:8080"}
    assert resolve({"datadir": str(tmp_path)}, env).oidc_issuers == (
        "https://gitlab.com",
        "http://127.0.0.1:8080",
    )
    assert resolve({"datadir": str(tmp_path)}, {}).oidc_issuers == ()


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("oidc-issuers", "http://issuer.example.com", "must be an https:// URL"),
        ("oidc-issuers", "http://localhost.evil.example", "must be an https:// URL"),
        ("oidc-issuers", "token.actions.githubusercontent.com", "http:// or https://"),
        ("oidc-audience", " ", "an audience of 1 to 200"),
    ],
)
def test_bad_values_stop_the_start_naming_the_option(
    tmp_path: Path, option: str, value: str, words: str
) -> None:
    """An issuer over plain http (off loopback) or an empty audience is refused at start."""
    with pytest.raises(SettingsError, match=words) as refused:
        resolve({"datadir": str(tmp_path), option: value}, {})
    assert f"--{option}" in str(refused.value)
