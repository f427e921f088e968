"""The --zalo options: they build the Zalo side, its limits and faults, and its personas."""

from __future__ import annotations

import pytest

from bot.sandbox.__main__ import build_parser, limits_from, main, split_personas, zalo_from


def test_zalo_is_off_by_default() -> None:
    """Without --zalo there is no Zalo side."""
    args = build_parser().parse_args([])
    assert zalo_from(args, limits_from(args)) is None


def test_zalo_options_become_settings() -> None:
    """The --zalo-* flags set the token, rates, faults, window and webhook shape."""
    args = build_parser().parse_args(
        [
            "--zalo",
            "--zalo-token",
            "42:TOKEN",
            "--zalo-rate-global",
            "5",
            "--zalo-burst-chat",
            "2",
            "--zalo-error-rate",
            "0.2",
            "--zalo-fail-method",
            "sendMessage=502",
            "--zalo-soft-faults",
            "--zalo-window-days",
            "2",
            "--zalo-flat-webhook",
            "--speed",
            "4",
            "--seed",
            "9",
        ]
    )
    zalo = zalo_from(args, limits_from(args))
    assert zalo is not None
    assert zalo.bot.token == "42:TOKEN"
    assert (zalo.limits.global_rate, zalo.limits.chat_burst, zalo.limits.speed) == (5, 2, 4)
    faults = zalo.injector.faults
    assert (faults.error_rate, faults.seed) == (0.2, 9)
    assert faults.methods["sendmessage"].status == 502
    assert zalo.soft_faults
    assert not zalo.wrap_webhook
    assert zalo.oa.settings.window == 2 * 86400


def test_personas_split_by_channel() -> None:
    """Personas marked "channel": "zalo" go to the Zalo side."""
    telegram = {"id": "a", "label": "A", "role": "r", "unit": "u", "user_id": 1}
    zalo = {**telegram, "id": "b", "user_id": "71", "channel": "zalo"}
    assert split_personas([telegram, zalo]) == ([telegram], [zalo])


def test_bad_zalo_fault_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A Zalo error rate above 1 exits with a usage message."""
    with pytest.raises(SystemExit) as caught:
        main(["--zalo", "--zalo-error-rate", "2"])
    assert caught.value.code == 2
    assert "error_rate" in capsys.readouterr().err
