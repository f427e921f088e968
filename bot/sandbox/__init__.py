"""An offline Telegram Bot API sandbox with a user side and a chat simulator page."""

from bot.sandbox.counters import Counters
from bot.sandbox.errors import ApiError
from bot.sandbox.faults import FaultRule, Faults, MethodFault
from bot.sandbox.limits import FakeTime, Limits
from bot.sandbox.server import (
    DEFAULT_TOKEN,
    DEFAULT_USERNAME,
    SandboxServer,
    run_sandbox,
)
from bot.sandbox.state import CallbackRecord, Chat, Persona, User
from bot.sandbox.webhook import RetryPolicy

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "ApiError",
    "CallbackRecord",
    "Chat",
    "Counters",
    "FakeTime",
    "FaultRule",
    "Faults",
    "Limits",
    "MethodFault",
    "Persona",
    "RetryPolicy",
    "SandboxServer",
    "User",
    "run_sandbox",
]
