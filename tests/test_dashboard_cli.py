"""The dashboard's settings, its password command and its port, as an operator meets them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import dashboard_app
from bot.cli.main import app
from bot.config import ConfigError, Settings, load_settings
from bot.i18n import t
from bot.models import DashboardPassword
from bot.runtime import Runtime
from bot.startup import StartupFault
from tests.test_cli import EXAMPLES, count


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run commands against a fresh SQLite file with the example department imported."""
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", url)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input)

    assert invoke("import", "units", str(EXAMPLES / "units.csv")).exit_code == 0
    assert invoke("import", "staff", str(EXAMPLES / "staff.csv")).exit_code == 0
    invoke.url = url
    return invoke


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ("[dashboard]\nenabled = true\n", "dashboard", "config.error.dashboard_url_missing"),
        (
            '[dashboard]\npublic_url = "baocao.gov.vn"\n',
            "dashboard.public_url",
            "config.error.dashboard_url",
        ),
        ("[dashboard]\nport = 0\n", "dashboard.port", "config.error.greater_than_equal"),
        (
            "[dashboard]\nsession_minutes = 1\n",
            "dashboard.session_minutes",
            "config.error.greater_than_equal",
        ),
        (
            "[dashboard]\nlink_minutes = 600\n",
            "dashboard.link_minutes",
            "config.error.less_than_equal",
        ),
        ("[dashboard]\nenable = true\n", "dashboard.enable", "config.error.unknown_key"),
    ],
)
def test_each_bad_dashboard_key_is_named_and_translated(tmp_path, body, key, reason):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = {(p.key, p.reason) for p in info.value.problems}
    assert (key, reason) in problems
    assert all(t(p.reason, "vi", **p.params) != p.reason for p in info.value.problems)


def test_check_config_says_where_the_dashboard_listens(tmp_path):
    path = write(
        tmp_path,
        '[dashboard]\nenabled = true\nport = 8099\npublic_url = "https://baocao.example.gov.vn/"\n',
    )
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    said = t(
        "dashboard.cli.summary",
        "vi",
        listen="127.0.0.1:8099",
        url="https://baocao.example.gov.vn",
    )
    assert said in " ".join(result.output.split())


def test_dashboard_password_is_set_hashed_for_a_leader_and_refused_for_staff(cli):
    leader = cli("dashboard-password", "CB001", "--password-stdin", input="mật khẩu rất dài 2026\n")
    assert leader.exit_code == 0, leader.output
    assert "Trần Quốc Hưng" in leader.output
    assert count(cli.url, DashboardPassword) == 1
    staff = cli("dashboard-password", "CB031", "--password-stdin", input="mật khẩu rất dài 2026\n")
    assert staff.exit_code == 1
    assert t("dashboard.error.no_access", "vi") in " ".join(staff.output.split())
    short = cli("dashboard-password", "CB007", "--password-stdin", input="ngắn\n")
    assert short.exit_code == 1
    unknown = cli("dashboard-password", "NOPE", "--password-stdin", input="mật khẩu rất dài 2026\n")
    assert unknown.exit_code == 1
    assert count(cli.url, DashboardPassword) == 1


async def test_a_busy_dashboard_port_is_a_startup_fault_naming_the_key(maker, clock):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        settings = Settings(
            dashboard={"enabled": True, "port": port, "public_url": "http://127.0.0.1"}
        )
        with pytest.raises(StartupFault) as info:
            await dashboard_app.start(Runtime(settings=settings, maker=maker, clock=clock))
    assert "dashboard.port" in info.value.message("vi")


async def test_the_dashboard_starts_and_stops_on_its_port(maker, clock):
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(dashboard={"enabled": True, "port": port, "public_url": "http://x.test"})
    handle = await dashboard_app.start(Runtime(settings=settings, maker=maker, clock=clock))
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/login")
        assert answer.status_code == 200
        assert answer.headers["x-frame-options"] == "DENY"
        assert "server" not in answer.headers
    finally:
        await handle.stop()
    with socket.socket() as again:  # the port is free once stopped
        again.bind(("127.0.0.1", port))
