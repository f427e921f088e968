"""QR codes of service points: PNG images and a printable A4 sheet of cards."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import segno

from bot.i18n import t
from bot.services.ratings.service_points import ServicePoint, deep_link

SCALE = 10
BORDER = 4
ERROR_LEVEL = "m"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SHEET_CSS = """
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { margin: 0; font-family: "Times New Roman", "Noto Serif", serif; color: #000; }
h1 { font-size: 14pt; text-align: center; margin: 0 0 6mm; }
.sheet { display: grid; grid-template-columns: 1fr 1fr; gap: 6mm; }
.card { border: 0.4mm solid #333; border-radius: 3mm; padding: 5mm; text-align: center;
        break-inside: avoid; page-break-inside: avoid; }
.agency { font-size: 10pt; text-transform: uppercase; margin: 0 0 1mm; }
.unit { font-weight: bold; font-size: 12pt; margin: 0 0 2mm; }
.point { font-size: 11pt; margin: 0 0 2mm; }
.card img { width: 55mm; height: 55mm; image-rendering: pixelated; }
.hint { font-size: 10pt; margin: 2mm 0; }
.opens { font-size: 9pt; font-style: italic; margin: 0 0 1mm; }
.link { font-size: 7pt; word-break: break-all; color: #333; margin: 0; }
.zalo { font-size: 9pt; word-break: break-all; margin: 2mm 0 0; }
.code { font-size: 11pt; margin: 1mm 0 0; }
"""


@dataclass(frozen=True)
class QrCard:
    """One printable QR code: what it points at, its link, its image and its file name."""

    point: ServicePoint
    link: str
    png: bytes
    zalo_link: str | None = None

    @property
    def code(self) -> str:
        """Return the start code a person sends as the first message on Zalo."""
        return self.point.payload

    @property
    def file_name(self) -> str:
        """Return the PNG's file name: the kind and the code."""
        return f"{self.point.kind}-{self.point.code}.png"

    def data_uri(self) -> str:
        """Return the PNG as a data: URI."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def qr_png(text: str, *, scale: int = SCALE, border: int = BORDER) -> bytes:
    """Encode a text as a QR code PNG."""
    buffer = io.BytesIO()
    segno.make_qr(text, error=ERROR_LEVEL).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()


def make_card(point: ServicePoint, *, username: str, zalo_link: str | None = None) -> QrCard:
    """Build the card of a service point: the Telegram link's QR, and Zalo's link and code."""
    link = deep_link(username, point.payload)
    return QrCard(point, link, qr_png(link), zalo_link)


def write_pngs(cards: list[QrCard], out: Path) -> list[Path]:
    """Write each card's PNG into a folder (created if needed); return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for card in cards:
        path = out / card.file_name
        path.write_bytes(card.png)
        paths.append(path)
    return paths


def point_label(point: ServicePoint, locale: str) -> str:
    """Return the line that names the counter or the procedure of a card ('' for a unit)."""
    if point.counter is not None:
        return t("qr.card.counter", locale, name=point.counter.name)
    if point.procedure is not None:
        proc = point.procedure
        return t("qr.card.procedure", locale, name=proc.name, code=proc.code)
    return ""


def card_html(card: QrCard, locale: str, agency: str | None = None) -> str:
    """Render one card as HTML: agency, unit, counter or procedure, QR, what it opens, link."""
    esc = html.escape
    alt = t("qr.sheet.alt", locale, code=card.point.code)
    label = point_label(card.point, locale)
    unit = card.point.unit.name
    above = agency if agency and agency.casefold() != unit.casefold() else None
    return (
        '<section class="card">'
        + (f'<p class="agency">{esc(above)}</p>' if above else "")
        + f'<p class="unit">{esc(unit)}</p>'
        + (f'<p class="point">{esc(label)}</p>' if label else "")
        + f'<img src="{card.data_uri()}" alt="{esc(alt)}">'
        f'<p class="hint">{esc(t("qr.sheet.instruction", locale))}</p>'
        f'<p class="opens">{esc(t("qr.sheet.opens", locale))}</p>'
        f'<p class="link">{esc(card.link)}</p>'
        + (
            f'<p class="zalo">{esc(t("qr.sheet.zalo", locale, link=card.zalo_link))}</p>'
            f'<p class="code">{esc(t("qr.sheet.zalo_code", locale))} <b>{esc(card.code)}</b></p>'
            if card.zalo_link
            else ""
        )
        + "</section>"
    )


def sheet_html(cards: list[QrCard], *, locale: str, agency: str | None = None) -> str:
    """Render a self-contained A4 page of cards, images inlined, ready to print."""
    title = html.escape(t("qr.sheet.title", locale))
    body = "\n".join(card_html(card, locale, agency) for card in cards)
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(locale)}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{SHEET_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{title}</h1>\n<main class="sheet">\n{body}\n</main>\n</body>\n</html>\n'
    )
