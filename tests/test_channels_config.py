"""Channels in the configuration: Telegram optional like the others, at least one on, one
webhook server per worker (the old per-channel port keys refused, naming the new one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from bot.config import ConfigError, load_settings, run_problems, webhook_paths
from bot.i18n import t

TG_TOKEN = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnn"
ZALO_TOKEN = "1234567890:zalo-bot-token-0001"
ZALO_ONLY = f'[zalo]\nenabled = true\nbot_token = "{ZALO_TOKEN}"\n'
OA = """[zalo.oa]
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


def check(path: Path):
    return CliRunner().invoke(app, ["check-config", "--config", str(path)])


def test_telegram_is_on_with_a_token_and_off_without(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    assert load_settings(write(tmp_path, ZALO_ONLY)).telegram.enabled is False
    on = load_settings(write(tmp_path, f'[telegram]\ntoken = "{TG_TOKEN}"\n'))
    assert on.telegram.enabled is True
    off = load_settings(write(tmp_path, f'[telegram]\nenabled = false\ntoken = "{TG_TOKEN}"\n'))
    assert off.telegram.enabled is False
    monkeypatch.setenv("REFORMBOT_TELEGRAM__TOKEN", TG_TOKEN)
    assert load_settings(write(tmp_path, "")).telegram.enabled is True


def test_telegram_enabled_without_a_token_names_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    path = write(tmp_path, "[telegram]\nenabled = true\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [(p.key, p.reason) for p in info.value.problems] == [
        ("telegram", "config.error.telegram_token_missing")
    ]
    result = check(path)
    assert result.exit_code == 2
    assert t("config.error.telegram_token_missing", "vi") in result.output


def test_telegram_s_webhook_keys_are_not_required_while_telegram_is_off(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    settings = load_settings(write(tmp_path, '[telegram]\nmode = "webhook"\n' + ZALO_ONLY))
    assert settings.telegram.enabled is False
    assert run_problems(settings) == []


def test_a_zalo_only_configuration_passes_check_config(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    result = check(write(tmp_path, ZALO_ONLY))
    assert result.exit_code == 0, result.output
    assert t("cli.telegram_off", "vi").strip() in result.output
    assert "Zalo: polling" in result.output
    assert ZALO_TOKEN not in result.output


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_no_channel_on_is_refused_in_words(tmp_path, monkeypatch, command):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    path = write(tmp_path, '[telegram]\nusername = "sgddt_bot"\n')
    assert load_settings(path).telegram.enabled is False  # other commands still work with it
    result = CliRunner().invoke(app, [command, "--config", str(path)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert t("config.error.no_channel", "vi") in output
    assert "reformbot demo" in output
    assert str(path) in output
    assert "Traceback" not in result.output


def test_the_no_channel_error_is_in_the_configured_language(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    result = check(write(tmp_path, '[i18n]\ndefault_locale = "en"\n'))
    assert result.exit_code == 2
    assert t("config.error.no_channel", "en") in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (ZALO_ONLY + "webhook_port = 8444\n", "zalo.webhook_port", "webhook_port_moved"),
        (ZALO_ONLY + 'webhook_listen = "0.0.0.0"\n', "zalo.webhook_listen", "webhook_listen_moved"),
        (OA + "webhook_port = 8445\n", "zalo.oa.webhook_port", "webhook_port_moved"),
        (OA + 'webhook_listen = "0.0.0.0"\n', "zalo.oa.webhook_listen", "webhook_listen_moved"),
    ],
)
def test_an_old_per_channel_port_key_is_refused_naming_the_worker_s_key(
    tmp_path, body, key, reason
):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [(p.key, p.reason) for p in info.value.problems] == [(key, f"config.error.{reason}")]
    for locale in ("vi", "en"):
        assert "telegram.webhook_" in t(f"config.error.{reason}", locale)
    result = check(path)
    assert result.exit_code == 2
    assert key in result.output


def test_an_old_port_variable_is_named_as_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("REFORMBOT_ZALO__OA__WEBHOOK_PORT", "18441")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, OA))
    [problem] = info.value.problems
    assert problem.key == "zalo.oa.webhook_port"
    assert problem.source == "environment REFORMBOT_ZALO__OA__WEBHOOK_PORT"
    assert "REFORMBOT_TELEGRAM__WEBHOOK_PORT" in problem.message


def test_two_channels_on_one_webhook_path_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    body = (
        f'[telegram]\ntoken = "{TG_TOKEN}"\nmode = "webhook"\n'
        'webhook_url = "https://bot.example.gov.vn/hooks"\nwebhook_path = "hooks"\n'
        'webhook_secret = "telegram-secret-0123456789"\n'
        f'[zalo]\nenabled = true\nbot_token = "{ZALO_TOKEN}"\nmode = "webhook"\n'
        'webhook_url = "https://bot.example.gov.vn/hooks"\nwebhook_path = "/hooks/"\n'
        'webhook_secret = "zalo-secret-0123"\n'
    )
    path = write(tmp_path, body)
    settings = load_settings(path)
    assert webhook_paths(settings) == {
        "telegram.webhook_path": "/hooks",
        "zalo.webhook_path": "/hooks",
    }
    [problem] = run_problems(settings, str(path))
    assert (problem.key, problem.reason) == ("zalo.webhook_path", "config.error.webhook_path_twice")
    result = check(path)
    assert result.exit_code == 2
    message = t(
        "config.error.webhook_path_twice", "vi", path="/hooks", other="telegram.webhook_path"
    )
    assert message in " ".join(result.output.split())


def test_check_config_shows_the_worker_s_webhook_server(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    body = (
        "[telegram]\nwebhook_port = 8441\n"
        + ZALO_ONLY
        + 'mode = "webhook"\nwebhook_url = "https://bot.example.gov.vn/zalo"\n'
        + 'webhook_secret = "zalo-secret-0123"\n'
        + OA
    )
    result = check(write(tmp_path, body))
    assert result.exit_code == 0, result.output
    line = t("cli.webhook_summary", "vi", listen="127.0.0.1:8441", paths="/zalo, /zalo-oa")
    assert line.strip() in result.output


def test_a_bootstrap_admin_on_a_channel_that_is_off_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    admins = (
        "[bootstrap]\nadmins = [\n"
        '  { channel = "zalo", external_id = "7100000000000000001" },\n'
        '  { external_id = "123456789" },\n'  # Telegram, the default channel
        "]\n"
    )
    path = write(tmp_path, ZALO_ONLY + admins)
    [problem] = run_problems(load_settings(path), str(path))
    assert (problem.key, problem.reason) == (
        "bootstrap.admins.1.channel",
        "config.error.admin_channel_off",
    )
    result = check(path)
    assert result.exit_code == 2
    message = t("config.error.admin_channel_off", "vi", channel="telegram")
    assert message in " ".join(result.output.split())
