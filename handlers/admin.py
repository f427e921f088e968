"""Commands for administrators, leadership and heads: invites and the organisation."""

from __future__ import annotations

from bot.messages import Items, OutboundMessage, Text
from bot.models import Role
from bot.services.delivery import contacts
from bot.services.errors import InvalidInput, NotFound
from bot.services.org import invites, org
from handlers.context import Context, msg
from handlers.core import marked_channels, roles_text


async def invite(ctx: Context) -> list[OutboundMessage]:
    """Make invite links for a member of staff (by code) or for a unit's unlinked staff."""
    if len(ctx.event.args) != 1:
        raise InvalidInput("errors.usage", usage=Text("invite.usage"))
    code = ctx.event.args[0]
    settings = ctx.deps.settings.invites
    try:
        batch = await invites.create_invites(
            ctx.session,
            actor=ctx.actor,
            now=ctx.now,
            valid_days=settings.valid_days,
            person_code=code,
        )
    except NotFound:
        try:
            batch = await invites.create_invites(
                ctx.session,
                actor=ctx.actor,
                now=ctx.now,
                valid_days=settings.valid_days,
                unit_code=code,
            )
        except NotFound:
            raise NotFound("invite.unknown_target", code=code[:32]) from None
    if not batch.issued:
        return [msg("invite.none")]
    rows = tuple(
        {
            "name": i.full_name,
            "unit": i.unit_code or "–",
            "link": invites.deep_link(ctx.deps.bot_username or "?", i.code),
        }
        for i in batch.issued
    )
    return [
        msg(
            "invite.created",
            count=len(batch.issued),
            skipped=batch.skipped_linked,
            expires=batch.issued[0].expires_at,
            lines=Items("invite.line", rows),
        )
    ]


async def units(ctx: Context) -> list[OutboundMessage]:
    """List the units as a tree with linked / total staff."""
    tree = await org.unit_tree(ctx.session, actor=ctx.actor)
    if not tree:
        return [msg("units.empty")]
    rows = tuple(
        {
            "indent": "  " * line.depth,
            "code": line.unit.code,
            "name": line.unit.name,
            "linked": line.linked,
            "people": line.people,
        }
        for line in tree
    )
    return [msg("units.header", count=len(tree), lines=Items("units.line", rows))]


def preferred(line: org.PersonLine) -> contacts.Channels:
    """Return a person's linked channels with the one they chose marked."""
    return contacts.Channels(line.channels, line.person.preferred_channel)


async def people(ctx: Context) -> list[OutboundMessage]:
    """List a unit's staff and whether each has linked a chat account."""
    code = ctx.event.args[0] if ctx.event.args else None
    unit, lines = await org.unit_people(ctx.session, actor=ctx.actor, unit_code=code)
    rows = tuple(
        {
            "name": line.person.full_name,
            "roles": Text("people.roles", {"roles": roles_text(line.roles)})
            if line.roles - {Role.STAFF}
            else "",
            "status": Text("people.linked", {"channels": marked_channels(preferred(line))})
            if line.channels
            else Text("people.unlinked"),
        }
        for line in lines
    )
    return [
        msg("people.header", unit=unit.name, count=len(lines), lines=Items("people.line", rows))
    ]
