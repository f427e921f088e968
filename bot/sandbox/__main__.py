"""Run the sandbox standalone: python -m bot.sandbox --port 8081 [--no-limits] ..."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.i18n import t
from bot.sandbox.errors import ApiError
from bot.sandbox.faults import Faults
from bot.sandbox.limits import SHAPES, Limits
from bot.sandbox.server import DEFAULT_TOKEN, DEFAULT_USERNAME, run_sandbox
from bot.sandbox.zalo import DEFAULT_ZALO_NAME, DEFAULT_ZALO_TOKEN, ZALO_LIMITS, ZaloSandbox
from bot.sandbox.zalo.errors import BotApiError
from bot.sandbox.zalo.world import OaSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def build_parser(
    locale: str = "vi", prog: str = "python -m bot.sandbox"
) -> argparse.ArgumentParser:
    """Return the command-line parser, its help in the language."""

    def h(key: str) -> str:
        """Return one help text from the catalog."""
        return t(f"sandbox_cli.{key}", locale)

    class Formatter(argparse.HelpFormatter):
        """Write the usage line with the translated prefix."""

        def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: Any = None) -> None:
            """Add the usage line."""
            super().add_usage(
                usage, actions, groups, h("usage") + " " if prefix is None else prefix
            )

    parser = argparse.ArgumentParser(
        prog=prog,
        description=h("description"),
        add_help=False,
        formatter_class=Formatter,
    )
    server = parser.add_argument_group(h("server"))
    server.add_argument("-h", "--help", action="help", help=h("help"))
    server.add_argument("--host", default="127.0.0.1", help=h("host"))
    server.add_argument("--port", type=int, default=8081, help=h("port"))
    server.add_argument("--token", default=DEFAULT_TOKEN, help=h("token"))
    server.add_argument("--username", default=DEFAULT_USERNAME, help=h("username"))
    server.add_argument("--personas", type=Path, help=h("personas"))
    server.add_argument("--log-level", default="INFO", help=h("log_level"))
    limits = parser.add_argument_group(h("limits"))
    limits.add_argument("--rate-global", type=float, default=30.0, help=h("rate_global"))
    limits.add_argument("--rate-chat", type=float, default=1.0, help=h("rate_chat"))
    limits.add_argument("--rate-group", type=float, default=20.0, help=h("rate_group"))
    limits.add_argument("--burst-chat", type=int, default=3, help=h("burst_chat"))
    limits.add_argument("--speed", type=float, default=1.0, help=h("speed"))
    limits.add_argument("--no-limits", action="store_true", help=h("no_limits"))
    limits.add_argument("--limit-shape", choices=SHAPES, default="bucket", help=h("limit_shape"))
    limits.add_argument("--jitter-ms", default="0", metavar="MIN-MAX", help=h("jitter_ms"))
    limits.add_argument("--jitter-seed", type=int, default=0, help=h("jitter_seed"))
    faults = parser.add_argument_group(h("faults"))
    faults.add_argument("--error-rate", type=float, default=0.0, help=h("error_rate"))
    faults.add_argument("--delay-ms", type=int, default=0, help=h("delay_ms"))
    faults.add_argument("--drop-rate", type=float, default=0.0, help=h("drop_rate"))
    faults.add_argument("--blocked", type=int, action="append", default=[], help=h("blocked"))
    faults.add_argument("--seed", type=int, default=None, help=h("seed"))
    faults.add_argument(
        "--fail-method",
        action="append",
        default=[],
        metavar="METHOD=STATUS",
        help=h("fail_method"),
    )
    add_zalo_arguments(parser, h)
    return parser


def add_zalo_arguments(parser: argparse.ArgumentParser, h: Any) -> None:
    """Add the Zalo options (the Zalo side is off unless --zalo is given)."""
    zalo = parser.add_argument_group(h("zalo_group"))
    zalo.add_argument("--zalo", action="store_true", help=h("zalo"))
    zalo.add_argument("--zalo-token", default=DEFAULT_ZALO_TOKEN, help=h("zalo_token"))
    zalo.add_argument("--zalo-name", default=DEFAULT_ZALO_NAME, help=h("zalo_name"))
    rate, burst = ZALO_LIMITS.global_rate, ZALO_LIMITS.chat_burst
    zalo.add_argument("--zalo-rate-global", type=float, default=rate, help=h("zalo_rate_global"))
    zalo.add_argument("--zalo-rate-chat", type=float, default=1.0, help=h("rate_chat"))
    zalo.add_argument("--zalo-burst-chat", type=int, default=burst, help=h("burst_chat"))
    zalo.add_argument("--zalo-error-rate", type=float, default=0.0, help=h("error_rate"))
    zalo.add_argument("--zalo-delay-ms", type=int, default=0, help=h("delay_ms"))
    zalo.add_argument("--zalo-drop-rate", type=float, default=0.0, help=h("drop_rate"))
    zalo.add_argument(
        "--zalo-fail-method",
        action="append",
        default=[],
        metavar="METHOD=STATUS",
        help=h("zalo_fail_method"),
    )
    zalo.add_argument("--zalo-soft-faults", action="store_true", help=h("zalo_soft_faults"))
    zalo.add_argument("--zalo-window-days", type=float, default=7.0, help=h("zalo_window_days"))
    zalo.add_argument("--zalo-flat-webhook", action="store_true", help=h("zalo_flat_webhook"))


def zalo_from(args: argparse.Namespace, limits: Limits) -> ZaloSandbox | None:
    """Build the Zalo side from the arguments (None without --zalo)."""
    if not args.zalo:
        return None
    zalo_limits = replace(
        limits,
        global_rate=args.zalo_rate_global,
        global_burst=max(1, int(args.zalo_rate_global)),
        chat_rate=args.zalo_rate_chat,
        chat_burst=args.zalo_burst_chat,
    )
    faults = Faults.from_json(
        {
            "error_rate": args.zalo_error_rate,
            "delay_ms": args.zalo_delay_ms,
            "drop_rate": args.zalo_drop_rate,
            "seed": args.seed,
            "methods": dict(_method_status(item) for item in args.zalo_fail_method),
        }
    )
    return ZaloSandbox(
        args.zalo_token,
        args.zalo_name,
        limits=zalo_limits,
        faults=faults,
        oa=OaSettings(window=args.zalo_window_days * 86400.0),
        soft_faults=args.zalo_soft_faults,
        wrap_webhook=not args.zalo_flat_webhook,
    )


def split_personas(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """Split personas into Telegram ones and Zalo ones ("channel": "zalo")."""
    on_zalo = [item for item in items if isinstance(item, dict) and item.get("channel") == "zalo"]
    return [item for item in items if item not in on_zalo], on_zalo


def limits_from(args: argparse.Namespace) -> Limits:
    """Build the flood limits from the arguments (a bad jitter range is a ValueError)."""
    low, _, high = args.jitter_ms.partition("-")
    limits = Limits(
        enabled=not args.no_limits,
        global_rate=args.rate_global,
        chat_rate=args.rate_chat,
        chat_burst=args.burst_chat,
        group_per_minute=args.rate_group,
        speed=args.speed,
        shape=args.limit_shape,
        jitter_min_ms=float(low),
        jitter_max_ms=float(high or low),
        jitter_seed=args.jitter_seed,
    )
    try:
        limits.check()
    except ApiError as exc:
        raise ValueError(exc.description) from exc
    return limits


def faults_from(args: argparse.Namespace) -> Faults:
    """Build the faults from the arguments (400-style errors become usage errors)."""
    return Faults.from_json(
        {
            "error_rate": args.error_rate,
            "delay_ms": args.delay_ms,
            "drop_rate": args.drop_rate,
            "blocked": args.blocked,
            "seed": args.seed,
            "methods": dict(_method_status(item) for item in args.fail_method),
        }
    )


def _method_status(item: str) -> tuple[str, int | str]:
    """Split METHOD=STATUS (a bad status is refused by Faults.from_json)."""
    name, _, status = item.partition("=")
    return name, int(status) if status.isdigit() else status


def load_personas(path: Path | None) -> list[Any]:
    """Read personas from a JSON file (an array of objects)."""
    if path is None:
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: personas must be a JSON array")
    return data


def main(argv: Sequence[str] | None = None, prog: str = "python -m bot.sandbox") -> int:
    """Parse arguments and serve until SIGINT/SIGTERM; return the exit code."""
    from bot.config import configured_locale

    parser = build_parser(configured_locale(sys.argv[1:] if argv is None else argv), prog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        faults, personas = faults_from(args), load_personas(args.personas)
        limits = limits_from(args)
        zalo = zalo_from(args, limits)
        personas, zalo_personas = split_personas(personas)
        if zalo is not None:
            zalo.set_personas(zalo_personas)
    except (ApiError, BotApiError, ValueError, OSError) as exc:
        parser.error(str(exc))
    run_sandbox(args.host, args.port, args.token, args.username, limits, faults, personas, zalo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
