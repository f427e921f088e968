"""[zalo.oa] in the configuration: read from TOML, and each missing or bad key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from bot.config import ConfigError, load_settings
from bot.i18n import t

ERR = "config.error."
FULL = """[zalo.oa]
enabled = true
app_id = "1234567890"
oa_id = "9876543210"
secret_key = "app-secret-key-0001"
oa_secret_key = "oa-secret-key-0001"
refresh_token = "refresh-token-initial-0001"
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_an_official_account_is_read_from_its_table(tmp_path):
    settings = load_settings(write(tmp_path, FULL + "messaging_window_hours = 48\n"))
    oa = settings.zalo.oa
    assert (oa.enabled, oa.app_id, oa.oa_id, oa.messaging_window_hours) == (
        True,
        "1234567890",
        "9876543210",
        48,
    )
    assert oa.refresh_token is not None
    assert oa.refresh_token.get_secret_value() == "refresh-token-initial-0001"
    assert (oa.api_base, oa.oauth_base, oa.replay_window_seconds) == (
        "https://openapi.zalo.me",
        "https://oauth.zaloapp.com",
        7200,
    )


@pytest.mark.parametrize("key", ["app_id", "oa_id", "secret_key", "oa_secret_key", "refresh_token"])
def test_an_enabled_oa_names_each_missing_key(tmp_path, key):
    body = "\n".join(line for line in FULL.splitlines() if not line.startswith(key + " "))
    path = write(tmp_path, body + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    reason = f"config.error.zalo_oa_{key}_missing"
    assert [(p.key, p.reason) for p in info.value.problems] == [("zalo.oa", reason)]
    for locale in ("vi", "en"):
        assert f"zalo.oa.{key}" in t(reason, locale)
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert f"zalo.oa.{key}" in result.output


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ('app_id = "my-app"', "zalo.oa.app_id", "config.error.string_pattern_mismatch"),
        ('secret_key = "changeme"', "zalo.oa.secret_key", "config.error.placeholder"),
        ("replay_window_seconds = 5", "zalo.oa.replay_window_seconds", f"{ERR}greater_than_equal"),
        ("messaging_window_hours = 200", "zalo.oa.messaging_window_hours", f"{ERR}less_than_equal"),
        ("webhok_path = 'x'", "zalo.oa.webhok_path", "config.error.unknown_key"),
    ],
)
def test_a_bad_oa_key_is_named(tmp_path, line, key, reason):
    name = line.split(" ")[0]
    body = "\n".join(x for x in FULL.splitlines() if not x.startswith(name + " "))
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, body + "\n" + line + "\n"))
    assert (key, reason) in [(p.key, p.reason) for p in info.value.problems]


def test_the_disabled_default_needs_nothing(tmp_path):
    assert load_settings(write(tmp_path, "")).zalo.oa.enabled is False


def test_check_config_shows_where_the_oa_webhook_is_served(tmp_path):
    path = write(tmp_path, "[telegram]\nwebhook_port = 18441\n" + FULL)
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    line = t("cli.zalo_oa_summary", "vi", oa_id="9876543210", webhook="127.0.0.1:18441/zalo-oa")
    assert line.strip() in result.output
    assert "refresh-token-initial-0001" not in result.output


@pytest.mark.parametrize(("key", "value"), [("token_check_seconds", "0")])
def test_the_oa_token_check_is_bounded(tmp_path, key, value):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, FULL + f"{key} = {value}\n"))
    assert [p.key for p in info.value.problems] == [f"zalo.oa.{key}"]
