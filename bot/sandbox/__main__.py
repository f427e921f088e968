"""Run the sandbox standalone: python -m bot.sandbox --port 8081 [--no-limits] ..."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.sandbox.errors import ApiError
from bot.sandbox.faults import Faults
from bot.sandbox.limits import Limits
from bot.sandbox.server import DEFAULT_TOKEN, DEFAULT_USERNAME, run_sandbox

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (8081; 0 picks a free one)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bot token to accept")
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="bot username")
    limits = parser.add_argument_group("flood limits")
    limits.add_argument("--rate-global", type=float, default=30.0, help="messages/s per bot")
    limits.add_argument("--rate-chat", type=float, default=1.0, help="messages/s per private chat")
    limits.add_argument("--rate-group", type=float, default=20.0, help="messages/min per group")
    limits.add_argument("--burst-chat", type=int, default=3, help="burst per private chat")
    limits.add_argument("--speed", type=float, default=1.0, help="multiply every rate")
    limits.add_argument("--no-limits", action="store_true", help="switch flood limits off")
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--error-rate", type=float, default=0.0, help="share of 500 answers")
    faults.add_argument("--delay-ms", type=int, default=0, help="delay every answer")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    faults.add_argument(
        "--blocked",
        type=int,
        action="append",
        default=[],
        help="user id that blocked the bot (repeatable)",
    )
    faults.add_argument("--seed", type=int, default=None, help="random seed for faults")
    faults.add_argument(
        "--fail-method",
        action="append",
        default=[],
        metavar="METHOD=STATUS",
        help="answer every call of a method with an HTTP error, e.g. setMyCommands=500, "
        "deleteWebhook=404 for a server that lacks it (repeatable)",
    )
    parser.add_argument("--personas", type=Path, help="JSON file with an array of personas")
    parser.add_argument("--log-level", default="INFO", help="logging level (INFO)")
    return parser


def limits_from(args: argparse.Namespace) -> Limits:
    """Build the flood limits from the arguments."""
    return Limits(
        enabled=not args.no_limits,
        global_rate=args.rate_global,
        chat_rate=args.rate_chat,
        chat_burst=args.burst_chat,
        group_per_minute=args.rate_group,
        speed=args.speed,
    )


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


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until SIGINT/SIGTERM; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        faults, personas = faults_from(args), load_personas(args.personas)
    except (ApiError, ValueError, OSError) as exc:
        parser.error(str(exc))
    limits = limits_from(args)
    run_sandbox(args.host, args.port, args.token, args.username, limits, faults, personas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
