"""Beyond one machine: three webhook workers behind a proxy on one PostgreSQL, one job runner.

Each test runs real `reformbot run` processes against the sandbox Bot API server, which delivers
updates to a round-robin proxy (tests/e2e/proxy.py, standing in for nginx in deploy/). Every
process tries for the job lease; the holder dispatches the outbox. When it dies, another takes
the lease and finishes the broadcast. PostgreSQL only: the tests skip, saying so, without
REFORMBOT_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel, col, select

from bot import migrate
from bot.i18n import t
from bot.models import Outbox, OutboxStatus
from bot.sandbox.limits import Limits
from bot.sandbox.server import SandboxServer
from bot.sandbox.webhook import RetryPolicy
from bot.webhook import SECRET_HEADER
from jobs.dispatcher import MAX_IN_FLIGHT
from tests.e2e.conftest import ROOT, BotProcess, BotRunner, copies, count, free_port, seed
from tests.e2e.proxy import RoundRobinProxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("e2e_db", ["postgres"], indirect=True),
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

WORKERS = 3
SPEED = 5  # the sandbox runs Telegram's limits 5 times faster (150 messages/s); so is the bot
DELIVERY_ENV = {
    "REFORMBOT_DELIVERY__GLOBAL_RATE": str(30 * SPEED),
    "REFORMBOT_DELIVERY__CHAT_RATE": str(1 * SPEED),
    "REFORMBOT_DELIVERY__GROUP_PER_MINUTE": str(20 * SPEED),
    "REFORMBOT_DELIVERY__LEASE_SECONDS": "5",  # the smallest allowed: failover in seconds
    "REFORMBOT_DELIVERY__POLL_SECONDS": "0.2",
}
RECIPIENTS = 600
FIRST_UID = 930_000
CITIZEN = 929_001
WAIT = 120.0
WORKER_SECRET = "e2e-secret-token-0123456789"  # what tests/e2e/conftest.py configures
ACQUIRED = re.compile(r"job lease acquired by (\S+)")


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """Run the sandbox at the faster limits; it retries a failed webhook push within a second."""
    server = SandboxServer(webhook_retry=RetryPolicy(base=0.2, maximum=1.0, timeout=10.0))
    server.set_limits(Limits(speed=SPEED))
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


@dataclass
class Cluster:
    """The workers, the proxy in front of them and the runner that starts and stops them."""

    runner: BotRunner
    proxy: RoundRobinProxy
    workers: list[BotProcess]

    async def start_worker(self, mode: str = "webhook") -> BotProcess:
        """Start one more worker; a webhook worker registers the proxy's URL and joins it."""
        env = DELIVERY_ENV | {"REFORMBOT_TELEGRAM__WEBHOOK_URL": self.proxy.url}
        worker = await self.runner.start(mode, env)
        if worker.webhook_port is not None:
            self.proxy.upstreams.append(worker.webhook_port)
        self.workers.append(worker)
        return worker

    def leaving(self, worker: BotProcess) -> None:
        """Take a worker out of the cluster's list (the proxy keeps it, as nginx would)."""
        self.workers.remove(worker)

    def holder(self) -> BotProcess:
        """Return the one running worker that has taken the job lease."""
        holders = [w for w in self.workers if owner_of(w) is not None]
        assert len(holders) == 1, [w.log[-5:] for w in self.workers]
        return holders[0]


@pytest.fixture
async def cluster(bot_runner) -> AsyncIterator[Cluster]:
    """Start the proxy and three webhook workers behind it on one PostgreSQL database."""
    proxy = RoundRobinProxy()
    await proxy.start()
    group = Cluster(bot_runner, proxy, [])
    try:
        await asyncio.gather(*(group.start_worker() for _ in range(WORKERS)))
        yield group
    finally:
        await proxy.stop()


def head_revision() -> str | None:
    """Return the newest migration's revision."""
    return ScriptDirectory.from_config(migrate.alembic_config("")).get_current_head()


def acquired_at(worker: BotProcess) -> datetime | None:
    """Return when (local time, as logged) a worker took the job lease, if it did."""
    for line in worker.log:
        if ACQUIRED.search(line):
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return None


def owner_of(worker: BotProcess) -> str | None:
    """Return the lease owner id a worker logged when it took the job lease, if it did."""
    for line in worker.log:
        found = ACQUIRED.search(line)
        if found:
            return found.group(1)
    return None


async def wait_until(predicate, seconds: float = WAIT) -> None:
    """Poll a condition on the database or the sandbox (nothing to wait on) until it holds."""
    async with asyncio.timeout(seconds):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.05)  # other processes change it: nothing to wait on


async def sending_chats(db, owner: str) -> set[int]:
    """Return the chats whose row a lease owner has claimed and not yet recorded."""
    async with db() as s:
        stmt = select(Outbox.chat_id).where(
            col(Outbox.status) == OutboxStatus.SENDING, col(Outbox.lease_owner) == owner
        )
        return {int(chat) for chat in (await s.exec(stmt)).all()}


def reply_to(command: str) -> str:
    """Return the bot's answer to an unknown command: each test command has its own."""
    return t("errors.unknown_command", "vi", command=command)


async def ask(sandbox, commands: list[str]) -> list[str]:
    """Send commands as the citizen; wait for an answer to each; return what the bot sent."""
    for command in commands:
        sandbox.send_text(CITIZEN, f"/{command}", from_id=CITIZEN)
    wanted = [reply_to(command) for command in commands]
    got = 1
    while True:
        sent = [str(m["text"]) for m in await sandbox.wait_for_messages(CITIZEN, got, seconds=30)]
        if all(text in sent for text in wanted):
            return sent
        got = len(sent) + 1


async def broadcast_until_half(
    db, sandbox: SandboxServer, cluster: Cluster
) -> tuple[list[int], BotProcess]:
    """Queue the broadcast and wait until part of it has gone out; return chats and holder."""
    uids = await seed(db, sandbox, RECIPIENTS, first_uid=FIRST_UID, kind="broadcast")

    async def under_way() -> bool:
        return sandbox.counters().accepted_total >= RECIPIENTS // 5

    await wait_until(under_way)
    holder = cluster.holder()
    assert sandbox.counters().accepted_total < RECIPIENTS, "all sent before the kill: no test"
    return uids, holder


async def finish(db, cluster: Cluster, dead: BotProcess) -> BotProcess:
    """Wait until every row is sent; return the worker that took the lease over."""

    async def all_sent() -> bool:
        return await count(db, OutboxStatus.SENT) == RECIPIENTS

    await wait_until(all_sent)
    assert await count(db, OutboxStatus.FAILED) == 0
    successor = cluster.holder()
    assert successor is not dead
    assert owner_of(successor) != owner_of(dead)
    return successor


async def test_updates_are_answered_whichever_worker_gets_them(cluster, sandbox):
    sandbox.create_user("Người dân", user_id=CITIZEN)
    commands = [f"khongco{n}" for n in range(2 * WORKERS)]
    sent = await ask(sandbox, commands)

    assert sorted(sent) == sorted(reply_to(c) for c in commands)  # each answered exactly once
    assert sorted(cluster.proxy.hits.values()) == [2] * WORKERS  # and every worker answered
    assert [owner_of(w) is not None for w in cluster.workers].count(True) == 1


async def test_a_redelivered_update_is_handled_once_by_the_workers(cluster, sandbox):
    sandbox.create_user("Người dân", user_id=CITIZEN)
    first = sandbox.send_text(CITIZEN, "/khonglap", from_id=CITIZEN)
    cluster.proxy.lose_answer_once.add(first)
    # The lost answer makes the sandbox push the update again, to the next worker; the later
    # commands reach every worker after that, so once they are answered, so is any duplicate.
    sent = await ask(sandbox, [f"sau{n}" for n in range(WORKERS)])

    assert sent.count(reply_to("khonglap")) == 1
    assert len(sent) == 1 + WORKERS
    assert sum(cluster.proxy.hits.values()) == 2 + WORKERS  # the update did reach two workers


async def test_sigterm_of_the_lease_holder_loses_nothing_and_sends_nothing_twice(
    cluster, sandbox, db
):
    uids, holder = await broadcast_until_half(db, sandbox, cluster)
    cluster.leaving(holder)
    await cluster.runner.stop(holder)  # exit status 0, no traceback
    await finish(db, cluster, holder)

    assert set(copies(sandbox, uids).values()) == {1}  # 0 lost, 0 duplicated
    assert sum(sandbox.counters().accepted_by_chat[uid] for uid in uids) == RECIPIENTS
    assert any("dispatcher stopped" in line for line in holder.log)


async def test_kill_9_of_the_lease_holder_loses_nothing(cluster, sandbox, db):
    sandbox.create_user("Người dân", user_id=CITIZEN)
    uids, holder = await broadcast_until_half(db, sandbox, cluster)
    dead_owner = owner_of(holder)
    assert dead_owner is not None
    cluster.leaving(holder)
    killed_at, killed_wall = time.monotonic(), datetime.now()
    await cluster.runner.kill(holder)
    in_flight = await sending_chats(db, dead_owner)  # claimed, outcome not written: stable now
    sent_at_kill = sandbox.counters().accepted_total
    successor = await finish(db, cluster, holder)
    finished_at = time.monotonic()
    taken_at = acquired_at(successor)
    assert taken_at is not None
    # The proxy still lists the dead worker, as nginx would: it is skipped, nobody is ignored.
    assert await ask(sandbox, ["sauchet1", "sauchet2", "sauchet3"])

    got = copies(sandbox, uids)
    duplicated = {uid for uid, n in got.items() if n > 1}
    assert min(got.values()) == 1  # 0 lost
    assert max(got.values()) <= 2
    # Sent twice only where the request had gone out but its outcome was not written.
    assert duplicated <= in_flight
    assert len(duplicated) <= MAX_IN_FLIGHT
    print(
        f"\nscale e2e kill -9: {len(duplicated)} sent twice of {RECIPIENTS}; "
        f"{len(in_flight)} rows claimed by the dead worker, {sent_at_kill} sent before the kill; "
        f"lease taken over after {(taken_at - killed_wall).total_seconds():.1f} s, "
        f"all sent after {finished_at - killed_at:.1f} s "
        f"(lease {DELIVERY_ENV['REFORMBOT_DELIVERY__LEASE_SECONDS']} s), "
        f"successor {owner_of(successor)}"
    )


async def test_one_worker_polls_and_another_takes_over_when_it_dies(bot_runner, sandbox):
    sandbox.create_user("Người dân", user_id=CITIZEN)
    proxy = RoundRobinProxy()  # not used in polling mode; the cluster only keeps the workers
    group = Cluster(bot_runner, proxy, [])
    await asyncio.gather(*(group.start_worker("polling") for _ in range(WORKERS)))
    pollers = [w for w in group.workers if any("polling lease taken" in x for x in w.log)]
    assert len(pollers) == 1
    assert await ask(sandbox, ["truoc1", "truoc2"])

    group.leaving(pollers[0])
    await bot_runner.kill(pollers[0])
    sent = await ask(sandbox, ["sau1", "sau2"])

    assert sorted(sent) == sorted(reply_to(c) for c in ["truoc1", "truoc2", "sau1", "sau2"])
    takers = [w for w in group.workers if any("polling lease taken" in x for x in w.log)]
    assert len(takers) == 1


async def test_workers_started_at_once_on_an_empty_database_migrate_it_once(bot_runner, db):
    engine = db.kw["bind"]
    async with engine.begin() as conn:  # the fixture migrated it: start from nothing instead
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    env = DELIVERY_ENV | {"REFORMBOT_DATABASE__MIGRATE_ON_START": "true"}
    workers = await asyncio.gather(*(bot_runner.start("webhook", env) for _ in range(WORKERS)))

    assert await migrate.current(bot_runner.db_url) == head_revision()
    assert len(workers) == WORKERS


def update(update_id: int, command: str) -> dict[str, object]:
    """Return a Telegram update: the citizen sends a command in the private chat."""
    user = {"id": CITIZEN, "is_bot": False, "first_name": "Người dân", "language_code": "vi"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_790_000_000,
            "chat": {"id": CITIZEN, "type": "private", "first_name": "Người dân"},
            "from": user,
            "text": f"/{command}",
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command) + 1}],
        },
    }


def nginx_site(tmp_path: Path, upstream_ports: list[int], http: int, https: int) -> Path:
    """Write a runnable nginx configuration around deploy/nginx/reformbot.conf; return it."""
    for tool in ("nginx", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"checking deploy/nginx against the workers needs {tool} on PATH")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=bot.example.gov.vn", "-keyout", str(tmp_path / "privkey.pem"),
         "-out", str(tmp_path / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    servers = "".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in upstream_ports
    )
    (tmp_path / "upstream.conf").write_text(f"upstream reformbot_workers {{\n{servers}}}\n")
    site = (ROOT / "deploy" / "nginx" / "reformbot.conf").read_text()
    site = site.replace("/etc/nginx/reformbot/upstream.conf", str(tmp_path / "upstream.conf"))
    site = site.replace("/etc/nginx/tls/", f"{tmp_path}/").replace(
        "/var/log/nginx/", f"{tmp_path}/"
    )
    site = re.sub(r"listen \[::\]:\d+[^;]*;", "", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http};")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"{kind}_temp_path {tmp_path}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = (
        f"{user}daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log warn;\nevents {{}}\n"
        f"http {{\n{temp}{site}\n}}\n"
    )
    (tmp_path / "nginx.conf").write_text(main)
    return tmp_path / "nginx.conf"


async def test_the_deploy_nginx_config_fronts_the_workers(bot_runner, sandbox, tmp_path):
    sandbox.create_user("Người dân", user_id=CITIZEN)
    workers = await asyncio.gather(*(bot_runner.start("webhook") for _ in range(2)))
    http, https = free_port(), free_port()
    ports = [w.webhook_port for w in workers if w.webhook_port is not None]
    # In a thread: openssl takes a while, and the sandbox in this event loop must keep answering.
    conf = await asyncio.to_thread(nginx_site, tmp_path, ports, http, https)
    nginx = await asyncio.create_subprocess_exec(
        "nginx", "-c", str(conf), "-p", str(tmp_path), stderr=asyncio.subprocess.PIPE
    )
    base = f"https://127.0.0.1:{https}"
    good = {SECRET_HEADER: WORKER_SECRET}
    try:
        async with httpx.AsyncClient(verify=False, timeout=30) as client:
            for _ in range(100):  # nginx starting: nothing to wait on but its port
                with contextlib.suppress(httpx.TransportError):
                    await client.get(f"{base}/")
                    break
                await asyncio.sleep(0.05)
            answers = [
                await client.post(
                    f"{base}/telegram", json=update(6000 + n, f"quanginx{n}"), headers=good
                )
                for n in range(4)
            ]
            wrong = await client.post(
                f"{base}/telegram",
                json=update(6100, "x"),
                headers={SECRET_HEADER: "wrong-secret-0123456789"},
            )
            big = await client.post(
                f"{base}/telegram", content=b"x" * (2 * 1024 * 1024), headers=good
            )
            get = await client.get(f"{base}/telegram")
            other = await client.post(f"{base}/admin", json={}, headers=good)
            plain = await client.get(f"http://127.0.0.1:{http}/telegram")
    finally:
        nginx.terminate()
        await nginx.wait()

    assert [a.status_code for a in answers] == [200] * 4
    assert (wrong.status_code, big.status_code, get.status_code, other.status_code) == (
        403,
        413,
        403,
        404,
    )
    assert plain.status_code == 301
    assert "nginx" in big.text  # refused by nginx itself: the body never reached a worker
    replies = [str(m["text"]) for m in await sandbox.wait_for_messages(CITIZEN, 4, seconds=30)]
    assert sorted(replies) == sorted(reply_to(f"quanginx{n}") for n in range(4))
