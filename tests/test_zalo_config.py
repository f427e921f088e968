"""The [zalo] settings: defaults, and check-config naming each bad key with a translated reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from bot.config import ConfigError, load_settings
from bot.i18n import t
from tests.zalo_fake import TOKEN

WEBHOOK = f'enabled = true\nbot_token = "{TOKEN}"\nmode = "webhook"\n'


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_zalo_is_off_by_default_and_the_bot_api_keys_sit_at_the_top_level(tmp_path):
    settings = load_settings(write(tmp_path, f'[zalo]\nbot_token = "{TOKEN}"\n'))
    zalo = settings.zalo
    assert (zalo.enabled, zalo.mode, zalo.api_base) == (
        False,
        "polling",
        "https://bot-api.zaloplatforms.com",
    )
    assert zalo.bot_token is not None
    assert zalo.bot_token.get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ("enabled = true\n", "zalo", "config.error.zalo_token_missing"),
        ('bot_token = "abc"\n', "zalo.bot_token", "config.error.zalo_token_shape"),
        ('bot_token = "CHANGEME"\n', "zalo.bot_token", "config.error.placeholder"),
        ('webhook_secret = "short"\n', "zalo.webhook_secret", "config.error.zalo_secret_shape"),
        ('api_base = "bot-api.zaloplatforms.com"\n', "zalo.api_base", "config.error.zalo_url"),
        (WEBHOOK, "zalo", "config.error.zalo_webhook_url_missing"),
        (
            WEBHOOK + 'webhook_url = "https://bot.example.gov.vn/zalo"\n',
            "zalo",
            "config.error.zalo_webhook_secret_missing",
        ),
        ('mode = "push"\n', "zalo.mode", "config.error.literal_error"),
        ("rate = 0\n", "zalo.rate", "config.error.greater_than"),
        ('bot_tokn = "x"\n', "zalo.bot_tokn", "config.error.unknown_key"),
    ],
)
def test_a_bad_zalo_key_is_named_with_its_reason(tmp_path, body, key, reason):
    path = write(tmp_path, "[zalo]\n" + body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert (key, reason) in {(p.key, p.reason) for p in info.value.problems}
    assert t(reason, "vi") != reason
    assert t(reason, "en") != reason


def test_check_config_names_the_zalo_key_in_vietnamese_and_hides_the_token(tmp_path):
    path = write(tmp_path, "[zalo]\n" + WEBHOOK)
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert t("config.error.zalo_webhook_url_missing", "vi") in result.output
    assert "zalo.webhook_url" in result.output
    assert TOKEN not in result.output
    good = write(tmp_path, f'[zalo]\nenabled = true\nbot_token = "{TOKEN}"\n')
    result = CliRunner().invoke(app, ["check-config", "--config", str(good)])
    assert result.exit_code == 0, result.output
    assert "Zalo: polling, token đã đặt" in result.output
    assert TOKEN not in result.output
