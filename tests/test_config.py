"""Settings: file, environment overrides, and errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from bot.config import ConfigError, load_settings
from bot.i18n import t
from tests.cli_console import plain_consoles

ROOT = Path(__file__).resolve().parents[1]
GOOD_TOKEN = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnn"


@pytest.fixture(autouse=True)
def _consoles(monkeypatch):
    """Read the command line's output as printed into a wide file, whatever the terminal."""
    plain_consoles(monkeypatch)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_example_config_is_valid_and_documents_every_section():
    settings = load_settings(ROOT / "config.example.toml")
    assert settings.database.url == "sqlite+aiosqlite:///data/reformbot.db"
    assert settings.i18n.default_locale == "vi"
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section in type(settings).model_fields:
        assert f"[{section}]" in text, section


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, '[scheduler]\ntimezone = "Asia/Bangkok"\n')
    monkeypatch.setenv("REFORMBOT_SCHEDULER__TIMEZONE", "Asia/Ho_Chi_Minh")
    monkeypatch.setenv("REFORMBOT_TELEGRAM__TOKEN", GOOD_TOKEN)
    settings = load_settings(path)
    assert settings.scheduler.timezone == "Asia/Ho_Chi_Minh"
    assert settings.telegram.token is not None
    assert settings.telegram.token.get_secret_value() == GOOD_TOKEN
    assert GOOD_TOKEN not in repr(settings)


def test_postgres_url_gets_the_async_driver(tmp_path):
    settings = load_settings(write(tmp_path, '[database]\nurl = "postgresql://u@h/db"\n'))
    assert settings.database.url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ('[telegram]\ntoken = "CHANGEME"\n', "telegram.token", "config.error.placeholder"),
        ('[telegram]\ntoken = "abc"\n', "telegram.token", "config.error.token_shape"),
        (
            f'[telegram]\ntoken = "{GOOD_TOKEN}"\nmode = "webhook"\n',
            "telegram",
            "config.error.webhook_url_missing",
        ),
        ('[database]\nurl = "mysql://x"\n', "database.url", "config.error.db_scheme"),
        ('[scheduler]\ntimezone = "Mars/Base"\n', "scheduler.timezone", "config.error.timezone"),
        ("[invites]\nvalid_days = 0\n", "invites.valid_days", "config.error.greater_than_equal"),
        ('[tellegram]\ntoken = "x"\n', "tellegram", "config.error.unknown_key"),
        ("[tasks]\nzzz = 1\n", "tasks.zzz", "config.error.extra_forbidden"),
    ],
)
def test_bad_key_is_named_with_its_file(tmp_path, body, key, reason):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = {(p.key, p.reason, p.source) for p in info.value.problems}
    assert (key, reason, str(path)) in problems


def test_bad_env_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("REFORMBOT_I18N__DEFAULT_LOCALE", "fr")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""))
    assert info.value.problems[0].source == "environment REFORMBOT_I18N__DEFAULT_LOCALE"


def test_check_config_exit_2_without_traceback(tmp_path):
    path = write(tmp_path, '[telegram]\ntoken = "CHANGEME"\n[database]\nurl = 3\n')
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "telegram.token" in result.output
    assert "database.url" in result.output
    assert str(path) in result.output
    assert "Traceback" not in result.output


def test_check_config_never_prints_the_token(tmp_path):
    path = write(tmp_path, f'[telegram]\ntoken = "{GOOD_TOKEN}"\n')
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert GOOD_TOKEN not in result.output
    assert "đã đặt" in result.output


def test_broken_toml_and_missing_file(tmp_path):
    path = write(tmp_path, "[telegram\n")
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "TOML" in result.output
    result = CliRunner().invoke(app, ["check-config", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "không tìm thấy tệp cấu hình" in result.output


def test_run_without_token_points_to_the_demo(tmp_path, monkeypatch):
    monkeypatch.delenv("REFORMBOT_TELEGRAM__TOKEN", raising=False)
    result = CliRunner().invoke(app, ["run", "--config", str(write(tmp_path, ""))])
    assert result.exit_code == 2
    assert "reformbot demo" in result.output


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize(
    ("body", "key", "hint"),
    [
        ('[telegram]\ntokn = "x"\n', "telegram.tokn", "telegram.token"),
        ("[delivery]\nglobal_rat = 3\n", "delivery.global_rat", "delivery.global_rate"),
    ],
)
def test_misspelled_key_in_a_section_is_refused_with_the_closest_one(
    tmp_path, monkeypatch, command, body, key, hint
):
    monkeypatch.setenv("REFORMBOT_TELEGRAM__TOKEN", GOOD_TOKEN)
    path = write(tmp_path, body)
    result = CliRunner().invoke(app, [command, "--config", str(path)])
    assert result.exit_code == 2
    message = t("config.error.unknown_key", "vi", suggestion=hint)
    assert t("cli.config_problem", "vi", key=key, message=message, source=path) in result.output


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_misspelled_variable_is_refused_with_the_closest_one(tmp_path, monkeypatch, command):
    monkeypatch.setenv("REFORMBOT_TELEGRAM__TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("REFORMBOT_DELIVERY__GLOBAL_RAT", "3")
    monkeypatch.setenv("REFORMBOT_DELIVERYY__CHAT_RATE", "3")
    result = CliRunner().invoke(app, [command, "--config", str(write(tmp_path, ""))])
    assert result.exit_code == 2
    for name, hint in [
        ("REFORMBOT_DELIVERY__GLOBAL_RAT", "REFORMBOT_DELIVERY__GLOBAL_RATE"),
        ("REFORMBOT_DELIVERYY__CHAT_RATE", "REFORMBOT_DELIVERY__CHAT_RATE"),
    ]:
        message = t("config.error.unknown_key", "vi", suggestion=hint)
        line = t("cli.config_problem", "vi", key=name, message=message, source="environment")
        assert line in result.output


def test_variables_that_are_not_settings_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("REFORMBOT_CHROMIUM", "/usr/bin/chromium")
    monkeypatch.setenv("REFORMBOT_TEST_ANYTHING", "1")
    monkeypatch.setenv("REFORMBOT_BOOTSTRAP__ADMINS", '[{"external_id": "42"}]')
    settings = load_settings(write(tmp_path, ""))
    assert settings.bootstrap.admins[0].external_id == "42"


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ("[delivery]\nmax_attempts = true\n", "delivery.max_attempts", "config.error.int_parsing"),
        ("[invites]\nvalid_days = false\n", "invites.valid_days", "config.error.int_parsing"),
        ("[delivery]\nglobal_rate = true\n", "delivery.global_rate", "config.error.float_parsing"),
        ("[tasks]\nbefore_days = [true, 3]\n", "tasks.before_days", "config.error.int_list"),
    ],
)
def test_true_is_not_a_number(tmp_path, body, key, reason):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [(p.key, p.reason) for p in info.value.problems] == [(key, reason)]
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert key in result.output
