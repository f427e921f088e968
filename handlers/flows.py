"""Multi-step conversations: steps, prompts, 'back' and 'cancel', expiry and resumption."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bot.channels.base import Button, FileRef, OutboundMessage
from bot.config import Settings
from bot.models import Flow
from bot.services import flows
from bot.services.errors import InvalidInput
from handlers.context import Context, msg

DONE = "__done__"
BACK_WORDS = {"quay lại", "quay lai", "back", "trở lại"}
CANCEL_WORDS = {"huỷ", "hủy", "huy", "cancel", "thôi"}


@dataclass(frozen=True)
class Answer:
    """What the user gave at a step: typed text, a pressed choice, or a file."""

    text: str | None
    choice: str | None
    file: FileRef | None


Data = dict[str, Any]
Prompt = Callable[[Context, Data], Awaitable[list[OutboundMessage]]]
Accept = Callable[[Context, Data, Answer], Awaitable[str]]
Finish = Callable[[Context, Data], Awaitable[list[OutboundMessage]]]


@dataclass(frozen=True)
class FlowSpec:
    """A conversation: its steps (prompt + accept), the first step and what finishing does."""

    kind: str
    first: str
    prompts: dict[str, Prompt]
    accepts: dict[str, Accept]
    finish: Finish
    ttl: timedelta = timedelta(hours=2)
    ttl_of: Callable[[Settings], timedelta] | None = None

    def lifetime(self, ctx: Context) -> timedelta:
        """Return how long the flow stays open without an answer (configurable per flow)."""
        return self.ttl_of(ctx.deps.settings) if self.ttl_of else self.ttl


FLOWS: dict[str, FlowSpec] = {}


def register(spec: FlowSpec) -> FlowSpec:
    """Make a flow known to the router."""
    FLOWS[spec.kind] = spec
    return spec


def choice(key: str, value: str, **params: Any) -> Button:
    """Return a button that answers the current step with `value`."""
    return Button(key, f"flow:{value}", params)


def ask(key: str, *rows: tuple[Button, ...]) -> Prompt:
    """Return a prompt that shows one catalog message with rows of choice buttons."""

    async def prompt(ctx: Context, data: Data) -> list[OutboundMessage]:
        return [msg(key, buttons=tuple(rows))]

    return prompt


def confirm_on(value: str) -> Accept:
    """Return an accept step that finishes the flow only when `value` was pressed."""

    async def accept(ctx: Context, data: Data, answer: Answer) -> str:
        if answer.choice != value:
            raise InvalidInput("directive.flow.use_buttons")
        return DONE

    return accept


def _with_nav(messages: list[OutboundMessage]) -> list[OutboundMessage]:
    """Add 'back' and 'cancel' buttons under the last prompt."""
    nav = (choice("flow.back", "__back"), choice("flow.cancel", "__cancel"))
    last = messages[-1]
    return [*messages[:-1], replace(last, buttons=(*last.buttons, nav))]


async def start(ctx: Context, spec: FlowSpec, data: Data | None = None) -> list[OutboundMessage]:
    """Open a flow for the contact and ask its first question."""
    await flows.begin(
        ctx.session,
        contact=ctx.contact,
        kind=spec.kind,
        step=spec.first,
        now=ctx.now,
        ttl=spec.ttl,
        data=data,
    )
    return _with_nav(await spec.prompts[spec.first](ctx, data or {}))


def _answer(ctx: Context) -> Answer:
    """Read the user's answer from the event."""
    action = ctx.event.action or ""
    picked = action.partition(":")[2] if action.startswith("flow:") else None
    text = (ctx.event.text or "").strip() if picked is None else None
    return Answer(text or None, picked, ctx.event.file)


def _word(answer: Answer) -> str:
    """Return the navigation word the user typed or pressed, if any."""
    if answer.choice in ("__back", "__cancel"):
        return answer.choice
    typed = (answer.text or "").casefold()
    if typed in BACK_WORDS:
        return "__back"
    return "__cancel" if typed in CANCEL_WORDS else ""


async def proceed(ctx: Context, flow: Flow) -> list[OutboundMessage]:
    """Handle the user's answer to the open flow's current step."""
    spec = FLOWS.get(flow.kind)
    answer = _answer(ctx)
    word = _word(answer)
    if spec is None or word == "__cancel":
        await flows.end(ctx.session, flow)
        return [msg("flow.cancelled")]
    if word == "__back":
        flows.back(ctx.session, flow, now=ctx.now, ttl=spec.lifetime(ctx))
        return _with_nav(await spec.prompts[flow.step](ctx, flows.data_of(flow)))
    data = flows.data_of(flow)
    try:
        nxt = await spec.accepts[flow.step](ctx, data, answer)
    except InvalidInput as err:
        return [msg(err.key, **err.params), *_with_nav(await spec.prompts[flow.step](ctx, data))]
    if nxt == DONE:
        await flows.end(ctx.session, flow)
        return await spec.finish(ctx, data)
    flows.advance(ctx.session, flow, step=nxt, data=data, now=ctx.now, ttl=spec.lifetime(ctx))
    return _with_nav(await spec.prompts[nxt](ctx, data))
