"""QR cards carry the Telegram link and, when Zalo has a link, Zalo's link and the code to send."""

from __future__ import annotations

import html

from bot.i18n import t
from bot.services.ratings import qr
from bot.services.ratings.service_points import deep_link
from handlers.typed import start_code
from tests.test_qr import BOT, point

ZALO = "https://zalo.me/2345678901234567890"


def test_a_card_carries_both_links_and_the_code_to_send_on_zalo():
    card = qr.make_card(point("counter"), username=BOT, zalo_link=ZALO)
    page = qr.sheet_html([card], locale="vi")
    assert html.escape(deep_link(BOT, "rate_c_SGD-MOTCUA-Q1")) in page
    assert html.escape(t("qr.sheet.zalo", "vi", link=ZALO)) in page
    assert f"{html.escape(t('qr.sheet.zalo_code', 'vi'))} <b>rate_c_SGD-MOTCUA-Q1</b>" in page
    assert start_code(card.code)  # the code on the card is what the bot takes as a start
    english = qr.sheet_html([card], locale="en")
    assert html.escape(t("qr.sheet.zalo", "en", link=ZALO)) in english


def test_without_a_zalo_link_the_card_is_telegram_only():
    page = qr.sheet_html([qr.make_card(point("unit"), username=BOT)], locale="vi")
    assert "Zalo" not in page


def test_start_codes_are_rating_and_invite_codes_only():
    assert start_code("rate_p_1-000181")
    assert start_code(" inv_AbCdEfGhIjKlMnOpQrStUv ")
    assert not start_code("xin chào")
    assert not start_code("rate_c_")
    assert not start_code("rate_c_Q1 và thêm chữ")
