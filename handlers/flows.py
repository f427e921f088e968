"""Multi-step conversations: steps, prompts, 'back' and 'cancel', expiry and resumption."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from bot.channels.render import plain, render_key
from bot.config import Settings
from bot.i18n import LOCALES, t
from bot.messages import Button, FileRef, OutboundMessage
from bot.services import flows
from bot.services.errors import InvalidInput
from bot.services.flows import OpenFlow
from handlers.context import Context, msg

DONE = "__done__"
PREFIX = "flow:"
SKIP = "skip"
NAV = ("__back", "__cancel")


@dataclass(frozen=True)
class Answer:
    """What the user gave at a step: typed text, a pressed choice, or a file."""

    text: str | None
    choice: str | None
    file: FileRef | None


Data = dict[str, Any]
Prompt = Callable[[Context, Data], Awaitable[list[OutboundMessage]]]
Accept = Callable[[Context, Data, Answer], Awaitable[str | None]]
Finish = Callable[[Context, Data], Awaitable[list[OutboundMessage]]]


@dataclass(frozen=True)
class Step:
    """One row of a flow's table: its question, how an answer is taken, and where it goes next.

    `accept` returns None to go on to `next` (DONE finishes the flow), or one of `branches`
    when the answer decides the way (a step may also go to DONE early).
    """

    name: str
    prompt: Prompt
    accept: Accept
    next: str = DONE
    branches: tuple[str, ...] = ()

    def goes_to(self) -> tuple[str, ...]:
        """Return every step this one may lead to."""
        return (self.next, *self.branches, DONE)


@dataclass(frozen=True)
class FlowSpec:
    """A conversation: one ordered table of steps (the first starts it) and what finishing does."""

    kind: str
    steps: tuple[Step, ...]
    finish: Finish
    ttl: timedelta = timedelta(hours=2)
    ttl_of: Callable[[Settings], timedelta] | None = None
    table: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Index the steps by name; refuse a table that names a step it does not have."""
        table = {step.name: step for step in self.steps}
        if len(table) != len(self.steps) or not table:
            raise ValueError(f"flow {self.kind}: no steps, or a step name used twice")
        for step in self.steps:
            unknown = set(step.goes_to()) - {*table, DONE}
            if unknown:
                raise ValueError(f"flow {self.kind}: step {step.name} leads to {sorted(unknown)}")
        object.__setattr__(self, "table", table)

    @property
    def first(self) -> str:
        """Return the step the flow starts at."""
        return self.steps[0].name

    def lifetime(self, ctx: Context) -> timedelta:
        """Return how long the flow stays open without an answer (configurable per flow)."""
        return self.ttl_of(ctx.deps.settings) if self.ttl_of else self.ttl


def choice(key: str, value: str, *, number: int | None = None, **params: Any) -> Button:
    """Return a button that answers the current step with `value` (shown as `number`, if given)."""
    return Button(key, f"{PREFIX}{value}", params, number)


def fold(text: str) -> str:
    """Return text as compared with labels: NFC, lower case, letters and digits, single-spaced."""
    text = unicodedata.normalize("NFC", text).casefold()
    kept = "".join(c if c.isalnum() else " " for c in text)
    return " ".join(kept.split())


def unaccented(text: str) -> str:
    """Return folded text without Vietnamese tone and vowel marks ('đ' becomes 'd')."""
    bare = unicodedata.normalize("NFD", fold(text).replace("đ", "d"))
    return "".join(c for c in bare if unicodedata.category(c) != "Mn")


def catalog_words(key: str) -> frozenset[str]:
    """Return a catalog entry's '|'-separated words in every language, folded, with and without
    tone marks: what a person may type for it."""
    found = {fold(w) for loc in LOCALES for w in t(key, loc).split("|") if fold(w)}
    return frozenset(found | {unaccented(w) for w in found})


BACK_WORDS = catalog_words("flow.back_words")
CANCEL_WORDS = catalog_words("flow.cancel_words")
SKIP_WORDS = catalog_words("flow.skip_words")


def ask(key: str, *rows: tuple[Button, ...]) -> Prompt:
    """Return a prompt that shows one catalog message with rows of choice buttons."""

    async def prompt(ctx: Context, data: Data) -> list[OutboundMessage]:
        return [msg(key, buttons=tuple(rows))]

    return prompt


def confirm_on(value: str) -> Accept:
    """Return an accept step that goes on (to its table's next) only when `value` was pressed."""

    async def accept(ctx: Context, data: Data, answer: Answer) -> None:
        if answer.choice != value:
            raise InvalidInput("directive.flow.use_buttons")

    return accept


def _numbered(buttons: list[Button]) -> dict[int, int]:
    """Number a step's choices: a number the step gives is kept, the others take the next free."""
    taken = {b.number for b in buttons if b.number is not None}
    numbers: dict[int, int] = {}
    free = 1
    for b in buttons:
        if b.number is not None:
            numbers[id(b)] = b.number
            continue
        while free in taken:
            free += 1
        numbers[id(b)] = free
        taken.add(free)
    return numbers


def _is_choice(button: Button) -> bool:
    """Tell whether a button answers the flow's step (not another namespace's button)."""
    return button.action.startswith(PREFIX)


def _present(flow: OpenFlow, messages: list[OutboundMessage]) -> list[OutboundMessage]:
    """Number the step's choices, tie every flow button to this step, add 'back' and 'cancel'."""
    nav = (choice("flow.back", NAV[0]), choice("flow.cancel", NAV[1]))
    last = messages[-1]
    messages = [*messages[:-1], replace(last, buttons=(*last.buttons, nav))]
    choices = [b for m in messages for row in m.buttons for b in row if _is_choice(b)]
    numbers = _numbered([b for b in choices if b.action.removeprefix(PREFIX) not in NAV])
    token = flows.step_token(flow)

    def tie(b: Button) -> Button:
        if not _is_choice(b):
            return b
        action = f"{PREFIX}{token}:{b.action.removeprefix(PREFIX)}"
        return replace(b, action=action, number=numbers.get(id(b)))

    return [
        replace(m, buttons=tuple(tuple(tie(b) for b in row) for row in m.buttons)) for m in messages
    ]


async def _prompt(ctx: Context, spec: FlowSpec, flow: OpenFlow) -> list[OutboundMessage]:
    """Ask the flow's current question, with its buttons."""
    return _present(flow, await spec.table[flow.step].prompt(ctx, flows.data_of(flow)))


async def start(
    ctx: Context, spec: FlowSpec, data: Data | None = None, *, at: str | None = None
) -> list[OutboundMessage]:
    """Open a flow for the contact and ask its first question (or the step `at`, resuming)."""
    if at is not None and at not in spec.table:
        raise ValueError(f"flow {spec.kind}: no step {at!r}")
    flow = await flows.begin(
        ctx.session,
        contact=ctx.contact,
        kind=spec.kind,
        step=at or spec.first,
        now=ctx.now,
        ttl=spec.lifetime(ctx),
        data=data,
    )
    return await _prompt(ctx, spec, flow)


def _choices(messages: list[OutboundMessage]) -> list[Button]:
    """Return the step's choices as presented (numbered, navigation left out)."""
    return [
        b
        for m in messages
        for row in m.buttons
        for b in row
        if _is_choice(b) and b.number is not None
    ]


def _value(button: Button) -> str:
    """Return the answer a presented choice gives."""
    return button.action.removeprefix(PREFIX).partition(":")[2]


def _labels(button: Button) -> set[str]:
    """Return a button's label in every language, folded (and without tone marks)."""
    labels = {fold(render_key(button.key, button.params, loc, escape=plain)) for loc in LOCALES}
    return labels | {unaccented(label) for label in labels}


def typed_choice(text: str, choices: list[Button]) -> str | None:
    """Return the choice a typed answer names: its number, its label, or a skip word."""
    folded = fold(text)
    if folded.isascii() and folded.isdigit():
        return next((_value(b) for b in choices if b.number == int(folded)), None)
    for b in choices:
        if folded in _labels(b) or unaccented(text) in _labels(b):
            return _value(b)
    if folded in SKIP_WORDS or unaccented(text) in SKIP_WORDS:
        return next((_value(b) for b in choices if _value(b) == SKIP), None)
    return None


def _answer(ctx: Context) -> Answer:
    """Read the user's answer from the event."""
    action = ctx.event.action or ""
    picked = action.removeprefix(PREFIX).partition(":")[2] if action.startswith(PREFIX) else None
    text = (ctx.event.text or "").strip() if picked is None else None
    return Answer(text or None, picked, ctx.event.file)


def _stale(ctx: Context, flow: OpenFlow) -> bool:
    """Tell whether the pressed button belongs to another step (or flow) than the open one."""
    action = ctx.event.action or ""
    if not action.startswith(PREFIX):
        return False
    return action.removeprefix(PREFIX).partition(":")[0] != flows.step_token(flow)


def _word(answer: Answer) -> str:
    """Return the navigation word the user typed or pressed, if any."""
    if answer.choice in NAV:
        return answer.choice
    typed = {fold(answer.text or ""), unaccented(answer.text or "")}  # 'huỷ' is 'hủy'
    if typed & BACK_WORDS:
        return NAV[0]
    return NAV[1] if typed & CANCEL_WORDS else ""


async def proceed(
    ctx: Context, flow: OpenFlow, table: Mapping[str, FlowSpec]
) -> list[OutboundMessage]:
    """Handle the user's answer to the open flow's current step; `table` holds the bot's flows.

    Every way out either writes the flow (checked against its row) or confirms it first.
    """
    spec = table.get(flow.kind)
    answer = _answer(ctx)
    word = _word(answer)
    if spec is not None and _stale(ctx, flow):
        await flows.confirm(ctx.session, flow)
        return [msg("flow.step_done"), *await _prompt(ctx, spec, flow)]
    if spec is None or word == NAV[1]:
        await flows.end(ctx.session, flow)
        return [msg("flow.cancelled")]
    if word == NAV[0]:
        await flows.back(ctx.session, flow, now=ctx.now, ttl=spec.lifetime(ctx))
        return await _prompt(ctx, spec, flow)
    if answer.text and answer.file is None:
        picked = typed_choice(answer.text, _choices(await _prompt(ctx, spec, flow)))
        answer = answer if picked is None else Answer(None, picked, None)
    data = flows.data_of(flow)
    step = spec.table[flow.step]
    try:
        nxt = await step.accept(ctx, data, answer) or step.next
    except InvalidInput as err:
        await flows.confirm(ctx.session, flow)
        return [msg(err.key, **err.params), *await _prompt(ctx, spec, flow)]
    if nxt not in step.goes_to():
        raise ValueError(f"flow {spec.kind}: step {step.name} chose {nxt!r}, not in its table")
    if nxt == DONE:
        await flows.end(ctx.session, flow)
        return await spec.finish(ctx, data)
    await flows.advance(ctx.session, flow, step=nxt, data=data, now=ctx.now, ttl=spec.lifetime(ctx))
    return await _prompt(ctx, spec, flow)
