"""/dashboard: a one-time sign-in link to the web dashboard (the router answers only in private)."""

from __future__ import annotations

from bot.messages import OutboundMessage
from bot.services.dashboard import auth
from handlers.context import Context, msg

LOGIN_PATH = "/login/"


async def dashboard(ctx: Context) -> list[OutboundMessage]:
    """Send a leader or head a link that signs them in once, within minutes."""
    config = ctx.deps.settings.dashboard
    auth.require_dashboard(ctx.actor)
    if not config.enabled or not config.public_url:
        return [msg("dashboard.off")]
    token = await auth.issue_link(
        ctx.session, actor=ctx.actor, now=ctx.now, minutes=config.link_minutes
    )
    return [
        msg(
            "dashboard.link",
            url=config.public_url + LOGIN_PATH + token,
            minutes=config.link_minutes,
        )
    ]
