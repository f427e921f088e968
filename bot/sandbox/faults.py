"""Fault injection: blocked users, a share of 5xx answers, slow answers, dropped connections,
and whole methods that fail (a 5xx, or a 404 as from a server that lacks the method)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from bot.sandbox.errors import JsonDict, bad_request


@dataclass(frozen=True)
class FaultRule:
    """The faults met by requests for one chat."""

    blocked: bool = False
    error_rate: float = 0.0
    delay_ms: int = 0
    drop_rate: float = 0.0

    def to_json(self) -> JsonDict:
        """Return the rule as JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from JSON, checking the field names and ranges."""
        return cls().updated(data)

    def updated(self, data: Mapping[str, Any]) -> FaultRule:
        """Return a copy with the fields in `data` changed."""
        _check_names(data, {item.name for item in fields(self)})
        changes: dict[str, Any] = {}
        if "blocked" in data:
            changes["blocked"] = bool(data["blocked"])
        for name in ("error_rate", "drop_rate"):
            if name in data:
                changes[name] = _share(name, data[name])
        if "delay_ms" in data:
            changes["delay_ms"] = _whole(data["delay_ms"])
        return replace(self, **changes)


@dataclass(frozen=True)
class MethodFault:
    """How one Bot API method fails: its HTTP status, for `times` calls (0: always).

    The first `after` calls succeed (so the second part of a long message can be the one that
    fails).
    """

    status: int = 500
    times: int = 0
    after: int = 0

    def to_json(self) -> JsonDict:
        """Return the fault as JSON (`after` only when set)."""
        data = asdict(self)
        if not self.after:
            del data["after"]
        return data

    @classmethod
    def from_json(cls, data: Any) -> MethodFault:
        """Build a method fault from a status number or {status, times, after} (400 if wrong)."""
        if isinstance(data, int) and not isinstance(data, bool):
            data = {"status": data}
        _check_names(data, {"status", "times", "after"})
        status = data.get("status", 500)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise bad_request("faults field status must be an HTTP error status (400-599)")
        counts = {name: data.get(name, 0) for name in ("times", "after")}
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad_request(f"faults field {name} must be a non-negative integer")
        return cls(status, counts["times"], counts["after"])


@dataclass(frozen=True)
class Faults:
    """Faults for a run: defaults for every chat, users who blocked the bot, rules per chat."""

    error_rate: float = 0.0
    delay_ms: int = 0
    drop_rate: float = 0.0
    blocked: frozenset[int] = frozenset()
    chats: Mapping[int, FaultRule] = field(default_factory=dict)
    seed: int | None = None
    methods: Mapping[str, MethodFault] = field(default_factory=dict)

    def rule_for(self, chat_id: int | None) -> FaultRule:
        """Return the rule for a chat: its own rule if set, else the defaults."""
        if chat_id is not None and chat_id in self.chats:
            return self.chats[chat_id]
        default = FaultRule(False, self.error_rate, self.delay_ms, self.drop_rate)
        return replace(default, blocked=chat_id in self.blocked)

    def with_chat(self, chat_id: int, rule: FaultRule | None) -> Faults:
        """Return a copy with a chat's rule set (or removed when `rule` is None)."""
        chats = dict(self.chats)
        chats.pop(chat_id, None)
        if rule is not None:
            chats[chat_id] = rule
        return replace(self, chats=chats, blocked=self.blocked - {chat_id})

    def to_json(self) -> JsonDict:
        """Return the faults as JSON."""
        return {
            "error_rate": self.error_rate,
            "delay_ms": self.delay_ms,
            "drop_rate": self.drop_rate,
            "blocked": sorted(self.blocked),
            "chats": {str(key): rule.to_json() for key, rule in self.chats.items()},
            "seed": self.seed,
            "methods": {name: fault.to_json() for name, fault in self.methods.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        """Build faults from JSON, checking names and ranges (400 when wrong)."""
        _check_names(data, {item.name for item in fields(cls)})
        defaults = FaultRule().updated(
            {key: data[key] for key in ("error_rate", "delay_ms", "drop_rate") if key in data}
        )
        chats = data.get("chats") or {}
        if not isinstance(chats, Mapping):
            raise bad_request("faults field chats must be an object")
        methods = data.get("methods") or {}
        if not isinstance(methods, Mapping):
            raise bad_request("faults field methods must be an object")
        return cls(
            error_rate=defaults.error_rate,
            delay_ms=defaults.delay_ms,
            drop_rate=defaults.drop_rate,
            blocked=frozenset(_ids(data.get("blocked") or [])),
            chats={_chat_key(key): FaultRule.from_json(rule) for key, rule in chats.items()},
            seed=_seed(data.get("seed")),
            methods={str(k).lower(): MethodFault.from_json(v) for k, v in methods.items()},
        )


class FaultInjector:
    """Rolls the dice for faults, with a seeded random generator."""

    def __init__(self, faults: Faults) -> None:
        self.configure(faults)

    def configure(self, faults: Faults) -> None:
        """Use new faults and restart the random sequence (and the method fault counts)."""
        self.faults = faults
        self._random = random.Random(faults.seed)
        self._method_hits: Counter[str] = Counter()

    def method_fault(self, method: str) -> int | None:
        """Return the HTTP status a call of `method` must fail with, or None; count the hit."""
        fault = self.faults.methods.get(method.lower())
        if fault is None:
            return None
        self._method_hits[method.lower()] += 1
        hit = self._method_hits[method.lower()] - fault.after
        if hit <= 0 or (fault.times and hit > fault.times):
            return None
        return fault.status

    def set_chat(self, chat_id: int, rule: FaultRule | None) -> None:
        """Set or clear one chat's rule, keeping the random sequence."""
        self.faults = self.faults.with_chat(chat_id, rule)

    def rule_for(self, chat_id: int | None) -> FaultRule:
        """Return the rule in force for a chat."""
        return self.faults.rule_for(chat_id)

    def roll(self, share: float) -> bool:
        """Return True with probability `share`."""
        return share > 0 and self._random.random() < share


def _check_names(data: Mapping[str, Any], known: set[str]) -> None:
    """Reject unknown field names."""
    if not isinstance(data, Mapping):
        raise bad_request("faults must be a JSON object")
    unknown = set(data) - known
    if unknown:
        raise bad_request(f"unknown faults field(s): {', '.join(sorted(unknown))}")


def _share(name: str, value: Any) -> float:
    """Check a probability between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise bad_request(f"faults field {name} must be a number from 0 to 1")
    return float(value)


def _whole(value: Any) -> int:
    """Check a delay in milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request("faults field delay_ms must be a non-negative integer")
    return value


def _ids(values: Iterable[Any]) -> list[int]:
    """Check a list of chat ids."""
    return [_chat_key(value) for value in values]


def _chat_key(value: Any) -> int:
    """Convert a chat id given as number or string."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"bad chat id in faults: {value!r}") from None


def _seed(value: Any) -> int | None:
    """Check the random seed."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise bad_request("faults field seed must be an integer or null")
