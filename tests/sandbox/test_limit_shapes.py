"""The three limiter shapes and network jitter, at their admit/refuse edges on a fake clock."""

from __future__ import annotations

import time

import pytest
import telegram

from bot.sandbox import FakeTime, Limits, SandboxServer, User
from bot.sandbox.__main__ import build_parser, limits_from, main
from bot.sandbox.errors import ApiError
from bot.sandbox.limits import FloodControl

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def admitted(flood: FloodControl, first: int, count: int, paid: bool = False) -> int:
    """Send one message to each of `count` chats at once; return how many passed."""
    return sum(flood.admit(chat, False, paid) == 0 for chat in range(first, first + count))


def test_bucket_allows_a_burst_of_thirty_then_one_per_thirtieth() -> None:
    """The default shape: 30 at once, then a token every 1/30 s."""
    clock = FakeTime()
    flood = FloodControl(Limits(), clock)
    assert admitted(flood, 0, 31) == 30
    clock.advance(1 / 30)
    assert admitted(flood, 100, 2) == 1


def test_sliding_window_counts_the_trailing_second() -> None:
    """Sliding: 30 in any second; a slot frees exactly one second after its send."""
    clock = FakeTime()
    flood = FloodControl(Limits(shape="sliding"), clock)
    assert admitted(flood, 0, 20) == 20
    clock.advance(0.5)
    assert admitted(flood, 100, 10) == 10
    assert flood.admit(200, False) == 1  # 30 in the last second
    clock.advance(0.4999)
    assert flood.admit(201, False) == 1
    clock.advance(0.0002)  # the first 20 are now more than a second old
    assert admitted(flood, 300, 21) == 20


def test_sliding_window_has_no_burst_after_a_quiet_time() -> None:
    """Unlike the bucket, a long pause does not buy more than 30 in one second."""
    clock = FakeTime()
    flood = FloodControl(Limits(shape="sliding"), clock)
    clock.advance(60)
    assert admitted(flood, 0, 40) == 30


def test_fixed_window_resets_on_each_calendar_second() -> None:
    """Fixed: 30 per calendar second, so 60 may pass within a few milliseconds across a tick."""
    clock = FakeTime(start=1000.99)
    flood = FloodControl(Limits(shape="fixed"), clock)
    assert admitted(flood, 0, 31) == 30
    assert flood.admit(50, False) == 1
    clock.advance(0.009)  # 1000.999: still the same second
    assert flood.admit(51, False) == 1
    clock.advance(0.002)  # 1001.001: a new second
    assert admitted(flood, 100, 31) == 30


def test_window_shapes_apply_per_chat_and_per_group() -> None:
    """Per private chat 1 per second; per group 20 per minute, both as windows."""
    clock = FakeTime()
    flood = FloodControl(Limits(shape="sliding"), clock)
    assert flood.admit(1, False) == 0
    assert flood.admit(1, False) == 1
    assert sum(flood.admit(-5, True) == 0 for _ in range(21)) == 20
    assert flood.admit(-5, True) == 60
    clock.advance(1.0)
    assert flood.admit(1, False) == 0


def test_paid_window_and_speed() -> None:
    """The paid scope is a window of 1,000; speed 0.5 stretches every window to 2 s."""
    clock = FakeTime()
    flood = FloodControl(Limits(shape="sliding", speed=0.5, chat_burst=1), clock)
    assert admitted(flood, 0, 1001, paid=True) == 1000
    clock.advance(1.5)
    assert admitted(flood, 5000, 1, paid=True) == 0
    clock.advance(0.5)
    assert admitted(flood, 6000, 1000, paid=True) == 1000


def test_jitter_is_in_range_and_repeatable() -> None:
    """Jitter draws from [min, max] ms, the same sequence for the same seed."""
    limits = Limits(jitter_min_ms=5, jitter_max_ms=40, jitter_seed=3)
    first = [FloodControl(limits, FakeTime()).jitter() for _ in range(1)]
    flood, again = FloodControl(limits, FakeTime()), FloodControl(limits, FakeTime())
    draws = [flood.jitter() for _ in range(50)]
    assert draws == [again.jitter() for _ in range(50)]
    assert draws[0] == first[0]
    assert all(0.005 <= d <= 0.040 for d in draws)
    assert FloodControl(Limits(), FakeTime()).jitter() == 0.0


def test_limits_refuse_unknown_shapes_and_reversed_ranges() -> None:
    """PUT /limits checks the shape and the jitter range."""
    with pytest.raises(ApiError, match="shape"):
        Limits().updated({"shape": "leaky"})
    with pytest.raises(ApiError, match="jitter_max_ms"):
        Limits().updated({"jitter_min_ms": 10, "jitter_max_ms": 5})
    assert Limits().updated({"shape": "fixed", "jitter_max_ms": 30}).shape == "fixed"


def test_command_line_sets_shape_and_jitter(capsys: pytest.CaptureFixture[str]) -> None:
    """--limit-shape, --jitter-ms MIN-MAX and --jitter-seed reach the limits."""
    args = build_parser().parse_args(["--limit-shape", "sliding", "--jitter-ms", "5-40"])
    limits = limits_from(args)
    assert (limits.shape, limits.jitter_min_ms, limits.jitter_max_ms) == ("sliding", 5.0, 40.0)
    with pytest.raises(SystemExit):
        main(["--jitter-ms", "50-10"])
    assert "jitter_max_ms" in capsys.readouterr().err


async def test_server_answers_429_on_a_sliding_window(
    server: SandboxServer, tg: telegram.Bot, fake_time: FakeTime
) -> None:
    """Through HTTP: 30 pass, the 31st gets retry_after 1, and passes a second later."""
    server.set_limits(Limits(shape="sliding"))
    users = [server.create_user(f"Người {n}") for n in range(31)]
    for user in users[:30]:
        await tg.send_message(user.id, "Thông báo")
    with pytest.raises(telegram.error.RetryAfter):
        await tg.send_message(users[30].id, "Thông báo")
    fake_time.advance(0.5)
    with pytest.raises(telegram.error.RetryAfter):
        await tg.send_message(users[30].id, "Thông báo")
    fake_time.advance(0.5)
    assert (await tg.send_message(users[30].id, "Thông báo")).text == "Thông báo"
    assert server.counters().rate_limited_total == 2


async def test_server_delays_sends_by_the_jitter(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """With 30-30 ms of jitter a send takes at least 30 ms; other methods are not delayed."""
    server.set_limits(Limits(jitter_min_ms=30, jitter_max_ms=30))
    started = time.monotonic()
    await tg.send_message(lan.id, "trễ")
    assert time.monotonic() - started >= 0.03
    assert server.messages(lan.id)[-1]["text"] == "trễ"
