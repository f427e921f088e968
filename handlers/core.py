"""Commands every chat account has: /start, /help, /lang, /me, /stop."""

from __future__ import annotations

from collections.abc import Iterable

from bot.i18n import LOCALES
from bot.messages import Button, Items, OutboundMessage, Text
from bot.models import Role
from bot.services import flows
from bot.services.delivery import contacts
from bot.services.errors import InvalidInput
from bot.services.org import invites, org
from bot.services.org.access import Actor
from bot.services.ratings import service_points
from handlers.context import Context, msg
from handlers.ratings import start_rating
from handlers.registry import EVERYONE, STAFF, Command

ROLE_ORDER = (Role.ADMIN, Role.LEADER, Role.UNIT_HEAD, Role.STAFF)


def roles_text(roles: frozenset[Role]) -> Items:
    """Return the actor's roles as a translated, comma-separated list."""
    ordered = [r for r in ROLE_ORDER if r in roles] or [Role.STAFF]
    return Items(
        "roles.list.item", tuple({"role": Text(f"roles.{r.value}")} for r in ordered), ", "
    )


def marked_channels(channels: contacts.Channels) -> Items:
    """Return the linked channels, the one messages go to marked when there are several."""
    several = len(channels.linked) > 1
    rows = tuple(
        {
            "name": Text(f"channel.{c}"),
            "mark": Text("channel.current") if several and c == channels.current else "",
        }
        for c in channels.linked
    )
    return Items("channel.item_marked", rows, ", ")


def channel_buttons(channels: contacts.Channels) -> tuple[tuple[Button, ...], ...]:
    """Offer a button per other linked channel: 'Nhận tin qua Zalo'."""
    return tuple(
        (Button("channel.use_button", f"chan:{c}", {"name": Text(f"channel.{c}")}),)
        for c in channels.linked
        if c != channels.current
    )


def unit_name(ctx: Context) -> str:
    """Return the actor's unit name, or a dash."""
    return ctx.actor.unit.name if ctx.actor.unit else "–"


async def start(ctx: Context) -> list[OutboundMessage]:
    """Welcome the user; link a staff account when the payload is an invite code."""
    payload = ctx.event.payload
    if payload and service_points.parse_payload(payload) is not None:
        return await start_rating(ctx, payload)
    if payload and invites.is_invite_payload(payload):
        try:
            person = await invites.redeem(
                ctx.session, contact=ctx.contact, code=payload, now=ctx.now
            )
        except InvalidInput as err:  # answered, not raised: the wrong code's record is kept
            return [msg(err.key, **err.params)]
        unit = await org.unit_of(ctx.session, person)
        linked = await contacts.channels_of(ctx.session, person.id or 0)
        if len(linked.linked) < 2:
            return [msg("start.linked", name=person.full_name, unit=unit.name if unit else "–")]
        return [
            msg(
                "start.linked_more",
                name=person.full_name,
                unit=unit.name if unit else "–",
                channels=marked_channels(linked),
            )
        ]
    replies = []
    if ctx.contact.opted_out:
        contacts.set_opted_out(ctx.session, contact=ctx.contact, opted_out=False)
        replies.append(msg("start.resubscribed"))
    if ctx.actor.is_staff:
        assert ctx.actor.person is not None
        replies.append(
            msg("start.welcome_staff", name=ctx.actor.person.full_name, unit=unit_name(ctx))
        )
    else:
        replies.append(msg("start.welcome_citizen", agency=ctx.deps.settings.agency.name))
    return replies


def visible_to(actor: Actor, audience: str | frozenset[Role]) -> bool:
    """Tell whether /help should offer a command to this actor."""
    if audience == EVERYONE:
        return True
    if audience == STAFF:
        return actor.is_staff
    return isinstance(audience, frozenset) and actor.has_any(audience)


def help_lines(ctx: Context, commands: Iterable[Command]) -> list[OutboundMessage]:
    """List, in the order given, the commands this person's roles may use."""
    rows = tuple(
        {"command": c.name, "description": Text(c.help_key)}
        for c in commands
        if visible_to(ctx.actor, c.audience)
    )
    lines = Items("help.line", rows)
    if ctx.actor.is_staff:
        return [msg("help.header_staff", roles=roles_text(ctx.actor.roles), lines=lines)]
    return [msg("help.header_citizen", lines=lines)]


async def lang(ctx: Context) -> list[OutboundMessage]:
    """Offer the languages as buttons, or switch at once with '/lang en'."""
    if ctx.event.args:
        await contacts.set_locale(
            ctx.session, contact=ctx.contact, locale=ctx.event.args[0].lower()
        )
        return [msg("lang.changed")]
    buttons = (tuple(Button(f"lang.{code}", f"lang:{code}") for code in LOCALES),)
    return [msg("lang.choose", buttons=buttons)]


async def lang_pressed(ctx: Context) -> list[OutboundMessage]:
    """Switch language from a button and replace the question with the answer."""
    code = (ctx.event.action or "").partition(":")[2]
    await contacts.set_locale(ctx.session, contact=ctx.contact, locale=code)
    return [msg("lang.changed", edit=True)]


async def me(ctx: Context) -> list[OutboundMessage]:
    """Show the person's name, unit, roles and linked channels."""
    if not ctx.actor.is_staff:
        return [msg("me.not_staff")]
    p = await org.profile(ctx.session, actor=ctx.actor)
    linked = await contacts.channels_of(ctx.session, p.person.id or 0)
    none = Text("me.none")
    several = len(linked.linked) > 1
    return [
        msg(
            "me.profile",
            buttons=channel_buttons(linked) if several else (),
            name=p.person.full_name,
            code=p.person.code,
            title=p.person.title or none,
            unit=p.unit.name if p.unit else none,
            roles=roles_text(p.roles),
            channels=marked_channels(linked) if linked.linked else none,
            locale=Text(f"lang.{ctx.locale}"),
            hint=Text("me.channel_hint") if several else "",
        )
    ]


async def channel(ctx: Context) -> list[OutboundMessage]:
    """Choose the channel messages come by: '/channel zalo', or a button per linked channel."""
    if ctx.event.args:
        return await _use_channel(ctx, ctx.event.args[0])
    if ctx.actor.person is None:
        return [msg("me.not_staff")]
    linked = await contacts.channels_of(ctx.session, ctx.actor.person.id or 0)
    return [
        msg(
            "channel.choose",
            buttons=channel_buttons(linked),
            channels=marked_channels(linked) if linked.linked else Text("me.none"),
        )
    ]


async def channel_pressed(ctx: Context) -> list[OutboundMessage]:
    """Switch the channel messages come by from a button."""
    return await _use_channel(ctx, (ctx.event.action or "").partition(":")[2])


async def _use_channel(ctx: Context, name: str) -> list[OutboundMessage]:
    """Prefer a channel and say where messages go from now on."""
    person = await contacts.set_preferred(ctx.session, person=ctx.actor.person, channel=name)
    linked = await contacts.channels_of(ctx.session, person.id or 0)
    current = Text(f"channel.{linked.current}") if linked.current else Text("me.none")
    key = "channel.changed" if linked.current == person.preferred_channel else "channel.unusable"
    return [msg(key, name=Text(f"channel.{person.preferred_channel}"), current=current)]


async def stop(ctx: Context) -> list[OutboundMessage]:
    """Opt out of optional messages; tell staff which notices still come."""
    contacts.set_opted_out(ctx.session, contact=ctx.contact, opted_out=True)
    return [msg("stop.done_staff" if ctx.actor.is_staff else "stop.done_citizen")]


async def cancel(ctx: Context) -> list[OutboundMessage]:
    """Cancel the conversation in progress."""
    assert ctx.contact.id is not None
    flow = await flows.current(ctx.session, contact_id=ctx.contact.id, now=ctx.now)
    if flow is None:
        return [msg("flow.nothing_open")]
    await flows.end(ctx.session, flow)
    return [msg("flow.cancelled")]
