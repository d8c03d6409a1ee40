"""The config file's ``oidc:`` section: the README's examples parse, every bad key is refused
with one line naming it, and the secret never shows in a repr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cheeseboard.oidc_settings import OidcSettingsError, parse_oidc
from cheeseboard.settings import Settings, SettingsError, resolve

README = Path(__file__).resolve().parents[2] / "README.md"
GOOD = {"issuer": "https://id.example.com/realms/x", "client_id": "c", "client_secret": "s3cret"}


def test_the_readme_examples_parse(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    blocks = re.findall(r"```yaml\n(oidc:\n.*?)```", README.read_text(), re.S)
    assert len(blocks) == 2
    parsed = []
    for block in blocks:
        section = yaml.safe_load(block)["oidc"]
        section["client_secret_file"] = str(secret)
        parsed.append(parse_oidc(section))
    keycloak, google = parsed
    assert keycloak is not None and google is not None
    assert keycloak.client_secret == "from-a-file" and keycloak.auto_create_users
    assert keycloak.groups_claim == "groups" and keycloak.display_name == "Keycloak"
    assert google.username_claim == "email" and google.scopes == ("openid", "email")
    assert "from-a-file" not in repr(keycloak)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": "http://id.example.com"}, "oidc.issuer must be an https:// URL"),
        ({"issuer": None}, "oidc.issuer is required"),
        ({"client_id": ""}, "oidc.client_id must be a non-empty string"),
        ({"client_secret_file": "/nonexistent"}, "exactly one of client_secret"),
        ({"auto_create_users": "yes"}, "oidc.auto_create_users must be true or false"),
        ({"allowed_clock_skew": 100000}, "oidc.allowed_clock_skew must be 0 to 600"),
        ({"scopes": []}, "oidc.scopes must be a list"),
        ({"usernme_claim": "x"}, "unknown oidc key 'usernme_claim'"),
    ],
)
def test_bad_sections_are_refused_with_the_key(change: dict[str, object], message: str) -> None:
    section = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(OidcSettingsError, match=re.escape(message)):
        parse_oidc(section)


def test_the_section_reaches_the_workers(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"oidc": {**GOOD, "scopes": ["profile"]}}))
    settings = resolve({"datadir": str(tmp_path)}, {}, config)
    assert settings.oidc is not None and settings.oidc.scopes == ("openid", "profile")
    assert Settings.from_json(settings.to_json()) == settings
    config.write_text("oidc: [1]")
    with pytest.raises(SettingsError, match="oidc must be a mapping"):
        resolve({"datadir": str(tmp_path)}, {}, config)
    assert resolve({"datadir": str(tmp_path)}, {}, None).oidc is None
