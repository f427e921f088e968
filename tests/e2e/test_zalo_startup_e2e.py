"""`reformbot run` with Zalo on, when Zalo cannot start: a refused token, an unreachable API, a
busy webhook port, an old per-channel port key, no channel on at all. Each is told in a
translated sentence naming the key; exit status 2."""

from __future__ import annotations

import socket

import pytest

from bot.i18n import t
from bot.sandbox.server import SandboxServer
from tests.e2e.conftest import bot_env, free_port
from tests.e2e.test_startup_e2e import run_until_exit
from tests.e2e.test_zalo_e2e import sandbox, zalo_env

pytestmark = pytest.mark.e2e
__all__ = ["sandbox"]  # the fixture: the sandbox with its Zalo side

WRONG_TOKEN = "1234567890123456789:NOT-THE-ZALO-TOKEN-0000"


def env_for(sandbox: SandboxServer, tmp_path, mode: str, port: int, **zalo: str) -> dict[str, str]:
    """Return the environment of a bot with Telegram by polling and Zalo as given."""
    env = bot_env(sandbox, f"sqlite+aiosqlite:///{tmp_path}/bot.db", "polling", None)
    return env | zalo_env(sandbox, mode, port) | zalo


async def test_a_refused_zalo_token_is_told_without_the_token(sandbox, tmp_path):
    env = env_for(sandbox, tmp_path, "polling", free_port(), REFORMBOT_ZALO__BOT_TOKEN=WRONG_TOKEN)
    code, out = await run_until_exit(env, tmp_path)
    assert code == 2, out
    assert t("run.zalo.token_rejected", "vi", api=sandbox.zalo_base_url) in out
    assert "Traceback" not in out
    assert WRONG_TOKEN.partition(":")[2] not in out


async def test_an_unreachable_zalo_api_is_told(sandbox, tmp_path):
    base = f"http://127.0.0.1:{free_port()}/zalo"  # nothing listens there
    env = env_for(sandbox, tmp_path, "polling", free_port(), REFORMBOT_ZALO__API_BASE=base)
    code, out = await run_until_exit(env, tmp_path)
    assert code == 2, out
    assert t("run.zalo.api_unreachable", "vi", api=base, detail="") in out
    assert "Traceback" not in out


async def test_a_busy_webhook_port_is_told_with_the_worker_s_key(sandbox, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = await run_until_exit(env_for(sandbox, tmp_path, "webhook", port), tmp_path)
    assert code == 2, out
    assert t("run.port_busy", "vi", listen="127.0.0.1", port=port) in out
    assert "REFORMBOT_TELEGRAM__WEBHOOK_PORT" in out
    assert "Traceback" not in out


async def test_a_zalo_only_bot_with_a_refused_token_is_told(sandbox, tmp_path):
    env = env_for(sandbox, tmp_path, "polling", free_port(), REFORMBOT_ZALO__BOT_TOKEN=WRONG_TOKEN)
    del env["REFORMBOT_TELEGRAM__TOKEN"]
    code, out = await run_until_exit(env, tmp_path)
    assert code == 2, out
    assert t("run.zalo.token_rejected", "vi", api=sandbox.zalo_base_url) in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("REFORMBOT_ZALO__WEBHOOK_PORT", "config.error.webhook_port_moved"),
        ("REFORMBOT_ZALO__OA__WEBHOOK_PORT", "config.error.webhook_port_moved"),
        ("REFORMBOT_ZALO__WEBHOOK_LISTEN", "config.error.webhook_listen_moved"),
    ],
)
async def test_an_old_zalo_port_key_is_refused_naming_the_new_one(sandbox, tmp_path, name, reason):
    value = "127.0.0.1" if name.endswith("LISTEN") else "8444"
    env = env_for(sandbox, tmp_path, "polling", free_port()) | {name: value}
    code, out = await run_until_exit(env, tmp_path)
    assert code == 2, out
    assert t(reason, "vi") in " ".join(out.split())
    assert "telegram.webhook_" in out
    assert "Traceback" not in out


async def test_no_channel_on_is_told(sandbox, tmp_path):
    env = bot_env(sandbox, f"sqlite+aiosqlite:///{tmp_path}/bot.db", "polling", None)
    del env["REFORMBOT_TELEGRAM__TOKEN"]
    code, out = await run_until_exit(env, tmp_path)
    assert code == 2, out
    assert t("config.error.no_channel", "vi") in " ".join(out.split())
    assert "reformbot demo" in out
    assert "Traceback" not in out
