"""The routes: each command has help, each button a handler, each flow a row; imports add none."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

from sqlmodel import select

from bot.i18n import LOCALES, t
from bot.models import Contact
from bot.services.delivery import contacts
from handlers.flows import PREFIX, FlowSpec
from handlers.registry import EVERYONE, STAFF
from handlers.routes import ACTIONS, BUTTON_LIST, COMMAND_LIST, COMMANDS, FLOW_LIST, FLOWS
from tests import factories as f

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*(ROOT / "bot" / "services").rglob("*.py"), *(ROOT / "handlers").glob("*.py")]
HANDLERS = sorted(p.stem for p in (ROOT / "handlers").glob("*.py") if p.stem != "__init__")

# Run in a fresh interpreter: imports each module of the packages named on the command line alone
# (the modules of those packages unloaded first, the layers below kept) and prints, as JSON, every
# module-level container of bot/handlers/jobs and every model's ORM listener list that the import
# changed from what it is when its own module is imported alone.
IMPORT_PROBE = """
import importlib, json, pkgutil, sys, weakref
from sqlmodel import SQLModel
import bot.models

FRESH = tuple(sys.argv[1:])
CONTAINERS = (dict, list, set, weakref.WeakSet, weakref.WeakValueDictionary)
ORM = ("before_insert", "after_insert", "before_update", "after_update", "before_delete",
       "after_delete")
INSTANCE = ("init", "load", "refresh", "expire")

def state():
    sizes = {}
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] in ("bot", "handlers", "jobs"):
            for attr, value in list(vars(module).items()):
                if not attr.startswith("__") and isinstance(value, CONTAINERS):
                    sizes[name + ":" + attr] = len(value)
    for mapper in SQLModel._sa_registry.mappers:
        model = mapper.class_.__name__
        for ev in ORM:
            sizes[f"<{model} {ev}>"] = len(getattr(mapper.dispatch, ev))
        for ev in INSTANCE:
            sizes[f"<{model} {ev}>"] = len(getattr(mapper.class_manager.dispatch, ev))
    return sizes

def forget():
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in FRESH):
            del sys.modules[name]

names = []
for package in FRESH:
    names.append(package)
    path = importlib.import_module(package).__path__
    names += [m.name for m in pkgutil.walk_packages(path, package + ".")]
for name in names:  # the layers below are loaded once and stay
    importlib.import_module(name)
alone, before = {}, {}
for name in names:
    forget()
    before[name] = state()
    importlib.import_module(name)
    alone[name] = state()
changed = []
for name in names:
    for key, size in alone[name].items():
        owner = key.partition(":")[0] if ":" in key else None
        expected = alone[owner][key] if owner in alone else before[name].get(key, size)
        if size != expected:
            changed.append(f"importing {name} changes {key}: {expected} -> {size}")
print(json.dumps(changed))
"""


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


def _second_arg(node: ast.AST, function: str) -> ast.expr | None:
    """Return the second argument of a call `function(first, second, ...)`, if node is one."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == function
        and len(node.args) >= 2
    ):
        return node.args[1]
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
                action = _second_arg(call, "Button")
                if action is not None:
                    actions = [action]
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


def started_flows() -> dict[str, set[str]]:
    """Return, for each handler module, the names of the flows its `start(ctx, FLOW, ...)` opens."""
    found: dict[str, set[str]] = {}
    for name in HANDLERS:
        tree = ast.parse((ROOT / "handlers" / f"{name}.py").read_text(encoding="utf-8"))
        for call in ast.walk(tree):
            flow = _second_arg(call, "start")
            if flow is not None:
                found.setdefault(name, set()).update(_flow_names(flow))
    return found


def _flow_names(node: ast.expr) -> set[str]:
    """Return the names a flow argument may be (both ways of `A if x else B`)."""
    if isinstance(node, ast.IfExp):
        return _flow_names(node.body) | _flow_names(node.orelse)
    assert isinstance(node, ast.Name), ast.unparse(node)
    return {node.id}


def test_every_flow_a_route_starts_is_in_the_table():
    started = started_flows()
    assert sum(map(len, started.values())) >= len(FLOW_LIST)
    for module, names in started.items():
        for name in names:
            spec = getattr(importlib.import_module(f"handlers.{module}"), name)
            assert isinstance(spec, FlowSpec), (module, name)
            assert FLOWS.get(spec.kind) is spec, f"handlers.{module}.{name} is not in FLOW_LIST"
    defined = {
        id(value)
        for name in HANDLERS
        for value in vars(importlib.import_module(f"handlers.{name}")).values()
        if isinstance(value, FlowSpec)
    }
    assert defined == {id(spec) for spec in FLOW_LIST}
    assert list(FLOWS) == [spec.kind for spec in FLOW_LIST]
    assert len(FLOWS) == 11


def test_importing_a_module_alone_registers_nothing():
    probe = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, "handlers", "bot.services", "jobs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(probe.stdout) == []


async def test_the_contact_cache_forgets_a_contact_changed_through_the_orm(maker, clock):
    cache = contacts.ContactCache()
    async with maker() as s:
        row = await f.contact(s, "77")
        await s.commit()
        cache.remember(row)
    identity = contacts.Identity(row.channel, "77")
    async with maker() as s:
        assert cache.attach(s, identity) is not None
    async with maker() as s:
        stored = (await s.exec(select(Contact).where(Contact.external_id == "77"))).one()
        stored.locale = "en"
        await s.commit()
    async with maker() as s:
        assert cache.attach(s, identity) is None
