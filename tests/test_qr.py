"""QR codes: PNGs that decode to the deep link, the A4 sheet, and `reformbot qr`."""

from __future__ import annotations

import base64
import html
import re
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bot.cli.imports import import_app
from bot.cli.service_points import find_browser, points_app, qr_app
from bot.i18n import t
from bot.models import Procedure, ServiceCounter, Unit, UnitKind
from bot.services.ratings import qr
from bot.services.ratings.service_points import ServicePoint, deep_link, parse_payload

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
BOT = "sgd_anphu_bot"


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Decode a non-interlaced greyscale or palette PNG (bit depth 1 or 8) into grey bytes."""
    assert data.startswith(qr.PNG_SIGNATURE)
    pos, chunks, idat = 8, {}, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        idat += body if kind == b"IDAT" else b""
        chunks.setdefault(kind, body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth in (1, 8), colour in (0, 3), interlace) == (True, True, 0)
    palette = chunks.get(b"PLTE", b"")
    raw, stride, out = zlib.decompress(idat), (width * depth + 7) // 8, bytearray()
    prior = bytes(stride)
    for y in range(height):
        line = unfilter(raw[y * (stride + 1) : (y + 1) * (stride + 1)], prior)
        prior = line
        for x in range(width):
            value = line[x] if depth == 8 else (line[x // 8] >> (7 - x % 8)) & 1
            if colour == 3:
                value = palette[3 * value]
            elif depth == 1:
                value *= 255
            out.append(value)
    return width, height, bytes(out)


def unfilter(line: bytes, prior: bytes) -> bytes:
    """Undo a PNG row filter of type None, Sub or Up (one byte per pixel step)."""
    kind, data = line[0], bytearray(line[1:])
    assert kind in (0, 1, 2), f"unexpected PNG filter {kind}"
    for i in range(len(data)):
        if kind == 1 and i:
            data[i] = (data[i] + data[i - 1]) % 256
        elif kind == 2:
            data[i] = (data[i] + prior[i]) % 256
    return bytes(data)


def decode_qr(data: bytes) -> str:
    """Read the text of the QR code in a PNG with zxing-cpp."""
    zxingcpp = pytest.importorskip("zxingcpp", reason="zxing-cpp decodes the QR codes")
    width, height, pixels = png_pixels(data)
    found = zxingcpp.read_barcodes(memoryview(pixels).cast("B", (height, width)))
    assert len(found) == 1
    return str(found[0].text)


def point(kind: str) -> ServicePoint:
    """Return an in-memory service point of a kind."""
    unit = Unit(
        code="SGD.MOTCUA",
        name="Bộ phận Một cửa <Sở GD&ĐT>",
        kind=UnitKind.ONE_STOP,
        created_at=NOW,
        updated_at=NOW,
    )
    times: dict[str, Any] = {"created_at": NOW, "updated_at": NOW}
    if kind == "counter":
        return ServicePoint(
            unit, counter=ServiceCounter(code="SGD.MOTCUA.Q1", name="Quầy 1", unit_id=1, **times)
        )
    if kind == "procedure":
        proc = Procedure(code="1.000181", name="Cấp bản sao văn bằng, chứng chỉ từ sổ gốc", **times)
        return ServicePoint(unit, procedure=proc)
    return ServicePoint(unit)


@pytest.mark.parametrize("kind", ["counter", "procedure", "unit"])
def test_png_decodes_to_the_deep_link(kind):
    card = qr.make_card(point(kind), username=BOT)
    assert card.link.startswith(f"https://t.me/{BOT}?start=rate_")
    assert decode_qr(card.png) == card.link
    payload = card.link.split("start=", 1)[1]
    assert parse_payload(payload) == (kind, card.point.code)
    assert card.file_name == f"{kind}-{card.point.code}.png"


def test_png_size_follows_the_scale():
    data = qr.qr_png(deep_link(BOT, "rate_c_Q1"), scale=4, border=4)
    width, height, _ = png_pixels(data)
    assert width == height
    assert (width // 4 - 8 - 21) % 4 == 0  # a QR version: 21, 25, 29 … modules


def test_sheet_has_every_card_text_and_inlined_image():
    cards = [qr.make_card(point(kind), username=BOT) for kind in ("counter", "procedure", "unit")]
    page = qr.sheet_html(cards, locale="vi")
    assert "@page { size: A4" in page
    assert page.count('<section class="card">') == 3
    assert html.escape("Bộ phận Một cửa <Sở GD&ĐT>") in page
    assert "<Sở" not in page
    assert html.escape(t("qr.sheet.instruction", "vi")) in page
    assert "Quầy 1" in page
    assert "Cấp bản sao văn bằng, chứng chỉ từ sổ gốc" in page
    for card in cards:
        assert html.escape(card.link) in page
        assert f'src="{card.data_uri()}"' in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [decode_qr(base64.b64decode(b64)) for b64 in images] == [c.link for c in cards]
    assert "http" not in page.replace("https://t.me/", "")


def test_cards_name_the_agency_and_the_counter_and_say_the_link_opens_telegram():
    card = qr.make_card(point("counter"), username=BOT)
    page = qr.sheet_html([card], locale="vi", agency="Sở Giáo dục và Đào tạo tỉnh Đồng Nai")
    assert '<p class="agency">Sở Giáo dục và Đào tạo tỉnh Đồng Nai</p>' in page
    assert '<p class="point">Quầy 1</p>' in page
    assert card.point.code not in re.sub(r'(alt|src)="[^"]*"|https://\S+', "", page)
    assert page.count(t("qr.sheet.opens", "vi")) == 1
    assert "Telegram" in t("qr.sheet.opens", "vi")


def test_sheet_in_english():
    page = qr.sheet_html([qr.make_card(point("counter"), username=BOT)], locale="en")
    assert t("qr.sheet.instruction", "en") in page
    assert '<html lang="en">' in page


# --- command line -------------------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give a SQLite file holding the example units, procedures and counters."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.delenv("REFORMBOT_TELEGRAM__USERNAME", raising=False)
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    assert invoke(import_app, "units", str(EXAMPLES / "units.csv"))[0] == 0
    assert invoke(points_app, "procedures", str(EXAMPLES / "procedures.csv"))[0] == 0
    assert invoke(points_app, "counters", str(EXAMPLES / "counters.csv"))[0] == 0
    return tmp_path


def invoke(app: Any, *args: str) -> tuple[int, str]:
    """Run a typer app; return the exit code and its output (stdout and stderr)."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())


def reformbot() -> typer.Typer:
    """Mount the qr app as the lead's command line will."""
    app = typer.Typer()
    app.command("version")(lambda: None)
    app.add_typer(qr_app, name="qr")
    return app


def test_cli_all_counters_writes_pngs_and_sheet(seeded):
    code, out = invoke(reformbot(), "qr", "--all-counters", "--username", "@" + BOT)
    assert code == 0, out
    folder = seeded / "qr"
    names = sorted(p.name for p in folder.glob("*.png"))
    assert names == [
        "counter-SGD.MOTCUA.Q1.png",
        "counter-SGD.MOTCUA.Q2.png",
        "counter-UBND.ANPHU.Q1.png",
        "counter-UBND.PHULAM.Q1.png",
    ]
    link = deep_link(BOT, "rate_c_SGD-MOTCUA-Q2")
    assert decode_qr((folder / "counter-SGD.MOTCUA.Q2.png").read_bytes()) == link
    page = (folder / "qr-a4.html").read_text("utf-8")
    assert page.count('<section class="card">') == 4
    assert "UBND phường Phú Lâm" in page
    assert html.escape("Quầy 2 – Chuyển trường, thi và tuyển sinh") in page


def test_cli_one_procedure_with_username_from_config(seeded, monkeypatch):
    monkeypatch.setenv("REFORMBOT_TELEGRAM__USERNAME", BOT)
    code, out = invoke(reformbot(), "qr", "--procedure", "1.005092", "--out", "in")
    assert code == 0, out
    png = seeded / "in" / "procedure-1.005092.png"
    assert decode_qr(png.read_bytes()) == deep_link(BOT, "rate_p_1-005092")
    page = (seeded / "in" / "qr-a4.html").read_text("utf-8")
    assert "Công nhận trường tiểu học đạt chuẩn quốc gia" in page
    assert "Phòng Giáo dục Mầm non – Tiểu học" in page


def test_cli_unit(seeded):
    code, out = invoke(reformbot(), "qr", "--unit", "ubnd.anphu", "--username", BOT)
    assert code == 0, out
    assert (seeded / "qr" / "unit-UBND.ANPHU.png").is_file()


def test_cli_without_username_names_the_key(seeded):
    code, out = invoke(reformbot(), "qr", "--counter", "SGD.MOTCUA.Q1")
    assert code == 2
    assert "telegram.username" in out
    assert " ".join(t("qr.cli.need_username", "vi").split()) in out


@pytest.mark.parametrize(
    "args", [[], ["--unit", "SGD", "--all-counters"], ["--unit", "SGD", "--counter", "Q"]]
)
def test_cli_needs_exactly_one_choice(seeded, args):
    code, out = invoke(reformbot(), "qr", *args, "--username", BOT)
    assert code == 2
    assert " ".join(t("qr.cli.need_one", "vi").split()) in out


def test_cli_unknown_counter_is_a_translated_refusal(seeded):
    code, out = invoke(reformbot(), "qr", "--counter", "NOPE", "--username", BOT)
    assert code == 1
    assert t("points.error.unknown_counter", "vi", code="NOPE") in out
    assert not (seeded / "qr").exists()


def test_cli_pdf_without_chromium_explains(seeded, monkeypatch):
    monkeypatch.setattr("bot.cli.service_points.find_browser", lambda: None)
    code, out = invoke(reformbot(), "qr", "--unit", "SGD", "--username", BOT, "--pdf")
    assert code == 1
    assert "Chromium" in out
    assert (seeded / "qr" / "qr-a4.html").is_file()


@pytest.mark.skipif(find_browser() is None, reason="Chromium is not installed")
def test_cli_pdf_with_chromium(seeded):
    code, out = invoke(reformbot(), "qr", "--all-counters", "--username", BOT, "--pdf")
    assert code == 0, out
    assert (seeded / "qr" / "qr-a4.pdf").read_bytes().startswith(b"%PDF")
