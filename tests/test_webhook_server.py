"""One webhook server per worker: the Zalo Bot API's and the Official Account's routes side by
side on one aiohttp application, each refusing forged posts its own way, everything else 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import test_utils
from pydantic import SecretStr

from bot.config import Settings, ZaloSettings
from bot.messages import InboundEvent
from bot.webhook_server import WebhookServer
from bot.zalo_app import SECRET_HEADER, Webhook
from bot.zalo_oa_webhook import MAX_BODY, SIGNATURE_HEADER, ZaloOAWebhook
from tests.test_zalo_oa_fake import oa_settings
from tests.test_zalo_oa_webhook import event_body, signed
from tests.zalo_fake import TOKEN, update

SECRET = "zalo-secret-0123"


class Collected:
    """Stands in for the Zalo inbound: keeps what the route hands on."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    def submit(self, data: dict[str, Any]) -> None:
        self.updates.append(data)

    async def drain(self) -> None:
        """Nothing runs in the background."""


@pytest.fixture
async def both(maker, clock) -> AsyncIterator[tuple[Any, Collected, list[InboundEvent]]]:
    """Serve the Zalo Bot API's and the OA's routes on one server; give its client."""
    settings = Settings(
        zalo=ZaloSettings(
            enabled=True,
            bot_token=SecretStr(TOKEN),
            mode="webhook",
            webhook_url="https://bot.example.gov.vn/zalo",
            webhook_secret=SecretStr(SECRET),
        )
    )
    inbound, events = Collected(), []

    async def collect(event: InboundEvent) -> None:
        events.append(event)

    server = WebhookServer("127.0.0.1", 0)
    Webhook(settings, inbound, maker, clock).add_route(server)  # type: ignore[arg-type]
    oa = ZaloOAWebhook(oa_settings("http://unused"), maker, clock, collect)
    server.route("zalo_oa", oa.path, oa.handle, max_body=oa.max_body)
    client = test_utils.TestClient(test_utils.TestServer(server.web_app()))
    await client.start_server()
    yield client, inbound, events
    await oa.idle()
    await client.close()


async def test_each_path_keeps_its_own_guard(both, clock):
    client, inbound, events = both
    body, stamp = event_body(clock)
    bot_update = update("55", "/lang")
    answers = {
        "zalo, no secret": await client.post("/zalo", json=bot_update),
        "zalo, wrong secret": await client.post(
            "/zalo", json=bot_update, headers={SECRET_HEADER: "wrong-secret-00"}
        ),
        "zalo, the OA's signature": await client.post(
            "/zalo", json=bot_update, headers=signed(body, stamp)
        ),
        "oa, no signature": await client.post("/zalo-oa", data=body),
        "oa, the Bot API's secret": await client.post(
            "/zalo-oa", data=body, headers={SECRET_HEADER: SECRET}
        ),
        "oa, wrong mac": await client.post(
            "/zalo-oa", data=body, headers={SIGNATURE_HEADER: "mac=" + "0" * 64}
        ),
        "another path": await client.post("/telegram", json=bot_update),
        "zalo, GET": await client.get("/zalo"),
    }
    assert {name: answer.status for name, answer in answers.items()} == {
        "zalo, no secret": 403,
        "zalo, wrong secret": 403,
        "zalo, the OA's signature": 403,
        "oa, no signature": 401,
        "oa, the Bot API's secret": 401,
        "oa, wrong mac": 403,
        "another path": 404,
        "zalo, GET": 405,
    }
    assert (inbound.updates, events) == ([], [])

    good_bot = await client.post("/zalo", json=bot_update, headers={SECRET_HEADER: SECRET})
    good_oa = await client.post("/zalo-oa", data=body, headers=signed(body, stamp))
    assert (good_bot.status, good_oa.status) == (200, 200)
    assert [u["message"]["text"] for u in inbound.updates] == ["/lang"]


async def test_a_chunked_oa_body_is_read_only_up_to_the_oa_s_limit(both, clock):
    """The shared app accepts the largest channel's body; the OA's route keeps its own limit."""
    client, _, events = both
    body, stamp = event_body(clock)

    async def chunks():
        yield body
        yield b" " * (MAX_BODY + 1)

    answer = await client.post("/zalo-oa", data=chunks(), headers=signed(body, stamp))
    assert answer.status == 413
    assert events == []


def test_a_path_is_served_once():
    server = WebhookServer("127.0.0.1", 0)

    async def handler(request):
        raise AssertionError

    server.route("telegram", "hooks", handler, max_body=1024)
    with pytest.raises(ValueError, match="/hooks"):
        server.route("zalo", "/hooks/", handler, max_body=1024)
    assert not WebhookServer("127.0.0.1", 0).needed
    assert server.needed
