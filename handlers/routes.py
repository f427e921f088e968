"""What the bot handles, in one place: every command, every button namespace, every flow.

The router looks commands and buttons up here; /help and the chat menu list the commands in this
order (commands for everyone first, then for all staff, then by role). A multi-step flow is
started by a command or button handler; while it is open, the router hands the contact's answers
to the flow engine (handlers/flows.py) with the flows listed here. Importing a handler module
registers nothing: only these tables make a command, button or flow known.
"""

from __future__ import annotations

from typing import TypeVar

from bot.messages import OutboundMessage
from bot.models import Role
from handlers import (
    admin,
    broadcasts,
    cases,
    core,
    dashboard,
    directives,
    dossiers,
    ratings,
    reports,
    stats,
    surveys,
    tasks,
)
from handlers.context import Context
from handlers.flows import FlowSpec
from handlers.registry import EVERYONE, STAFF, Command, Handler, roles_only

ADMIN = roles_only(Role.ADMIN)
ADMIN_LEADER = roles_only(Role.ADMIN, Role.LEADER)
ADMIN_HEAD = roles_only(Role.ADMIN, Role.UNIT_HEAD)
MANAGEMENT = roles_only(Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
Route = TypeVar("Route", Command, Handler, FlowSpec)


async def help_(ctx: Context) -> list[OutboundMessage]:
    """List the commands this person's roles may use, in the order of this table."""
    return core.help_lines(ctx, COMMAND_LIST)


COMMAND_LIST: tuple[Command, ...] = (
    Command("start", core.start, EVERYONE),
    Command("help", help_, EVERYONE),
    Command("lang", core.lang, EVERYONE),
    Command("stop", core.stop, EVERYONE),
    Command("cancel", core.cancel, EVERYONE),
    Command("follow", dossiers.follow, EVERYONE),
    Command("survey", surveys.my_surveys, EVERYONE),
    Command("me", core.me, STAFF),
    Command("channel", core.channel, STAFF),
    Command("tasks", tasks.open_tasks, STAFF),
    Command("done", tasks.done, STAFF),
    Command("invite", admin.invite, ADMIN),
    Command("units", admin.units, ADMIN_LEADER),
    Command("people", admin.people, MANAGEMENT),
    Command("directive", directives.directive, ADMIN),
    Command("status", directives.status, MANAGEMENT),
    Command("broadcast", broadcasts.broadcast, ADMIN),
    Command("broadcasts", broadcasts.list_broadcasts, ADMIN_LEADER),
    Command("stats", stats.stats, MANAGEMENT),
    Command("report", reports.report, MANAGEMENT),
    Command("dashboard", dashboard.dashboard, MANAGEMENT),
    Command("reopen", tasks.reopen, ADMIN_HEAD),
    Command("task", tasks.assign, ADMIN),
    Command("campaigns", surveys.list_campaigns, MANAGEMENT),
    Command("results", surveys.show_results, MANAGEMENT),
    Command("compare", surveys.compare, ADMIN_LEADER),
    Command("survey_import", surveys.import_questionnaire, ADMIN),
    Command("survey_launch", surveys.launch, ADMIN),
    Command("survey_close", surveys.close_campaign, ADMIN),
)

# Button namespaces: a button's action is "<namespace>:<what>"; "flow:" belongs to open flows.
BUTTON_LIST: tuple[tuple[str, Handler], ...] = (
    ("lang", core.lang_pressed),
    ("chan", core.channel_pressed),
    ("ack", directives.ack),
    ("bcancel", broadcasts.cancel_pressed),
    ("case", cases.case_pressed),
    ("casefb", cases.citizen_feedback),
    ("apology", dossiers.apology_pressed),
    ("task", tasks.done_pressed),
    ("survey", surveys.answer_pressed),
    ("svread", surveys.read_pressed),
)

# Multi-step flows, by the command or button that starts them; an open flow takes the answers.
FLOW_LIST: tuple[FlowSpec, ...] = (
    ratings.RATING_FLOW,  # /start with a service point's link
    dossiers.FOLLOW_FLOW,
    tasks.DONE_FLOW,
    directives.DIRECTIVE_FLOW,
    broadcasts.BROADCAST_FLOW,
    tasks.ASSIGN_FLOW,
    cases.ANSWER_FLOW,
    cases.CLOSE_FLOW,
    dossiers.APOLOGY_FLOW,
    surveys.SURVEY_FLOW,  # a campaign's invitation button, or /survey
    surveys.IMPORT_FLOW,  # /survey_import
)


def _index(pairs: list[tuple[str, Route]], what: str) -> dict[str, Route]:
    """Index a table by name; refuse a name listed twice."""
    table = dict(pairs)
    if len(table) != len(pairs):
        raise ValueError(f"a {what} is listed twice")
    return table


COMMANDS: dict[str, Command] = _index([(c.name, c) for c in COMMAND_LIST], "command")
ACTIONS: dict[str, Handler] = _index(list(BUTTON_LIST), "button namespace")
FLOWS: dict[str, FlowSpec] = _index([(f.kind, f) for f in FLOW_LIST], "flow")
