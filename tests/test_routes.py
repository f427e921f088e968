"""The routing table: every command has help in each language, every button namespace a handler."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from bot.i18n import LOCALES, t
from handlers.flows import PREFIX
from handlers.registry import EVERYONE, STAFF
from handlers.routes import ACTIONS, BUTTON_LIST, COMMAND_LIST, COMMANDS

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*(ROOT / "bot" / "services").rglob("*.py"), *(ROOT / "handlers").glob("*.py")]


def _namespace(node: ast.expr, scope: ast.AST) -> str | None:
    """Return the namespace a button's action starts with ('ack' of f"ack:{id}"), if literal."""
    if isinstance(node, ast.Name):  # action = f"ack:{...}" earlier in the same function
        for sub in ast.walk(scope):
            if isinstance(sub, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == node.id for target in sub.targets
            ):
                return _namespace(sub.value, scope)
        return None
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
        return node.value.partition(":")[0]
    return None


def button_namespaces() -> dict[str, str]:
    """Return each namespace a Button(...) in services or handlers uses, with where."""
    found: dict[str, str] = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for scope in ast.walk(tree):
            if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for call in ast.walk(scope):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "Button"
                    and len(call.args) >= 2
                ):
                    actions = [call.args[1]]
                elif isinstance(call, ast.Call):  # a button's action handed on: action=f"ack:{id}"
                    actions = [k.value for k in call.keywords if k.arg == "action"]
                else:
                    continue
                for action in actions:
                    ns = _namespace(action, scope)
                    if ns is not None:
                        found.setdefault(ns, f"{path.relative_to(ROOT)}:{call.lineno}")
    return found


def test_every_command_has_help_in_every_language():
    for command in COMMAND_LIST:
        for locale in LOCALES:
            assert t(command.help_key, locale) != command.help_key, (command.name, locale)


def test_commands_are_listed_once_in_help_order():
    assert list(COMMANDS) == [c.name for c in COMMAND_LIST]
    rank = [0 if c.audience == EVERYONE else 1 if c.audience == STAFF else 2 for c in COMMAND_LIST]
    assert rank == sorted(rank)


def test_every_button_namespace_has_a_handler_and_every_handler_a_button():
    used = button_namespaces()
    flow_namespace = PREFIX.rstrip(":")
    assert {"ack", "task", "apology", "case", "casefb", "bcancel", "lang"} <= set(used)
    missing = {ns: at for ns, at in used.items() if ns not in ACTIONS and ns != flow_namespace}
    assert missing == {}
    assert set(ACTIONS) == set(used) - {flow_namespace}
    assert len(ACTIONS) == len(BUTTON_LIST)
    for handler in ACTIONS.values():
        assert inspect.iscoroutinefunction(handler)
