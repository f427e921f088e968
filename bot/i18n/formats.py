"""Numbers and times written the way a Vietnamese office writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

DECIMAL_SEP = {"vi": ",", "en": "."}
GROUP_SEP = {"vi": ".", "en": ","}


def format_number(value: float | Decimal | int, locale: str = "vi", *, digits: int = 1) -> str:
    """Write a number with the locale's decimal and group marks ("1.234,5" in Vietnamese)."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}"
        return text.replace(",", GROUP_SEP.get(locale, ","))
    step = Decimal(1).scaleb(-digits)
    rounded = Decimal(str(value)).quantize(step, rounding=ROUND_HALF_UP)
    if rounded == rounded.to_integral_value():
        rounded = rounded.quantize(Decimal(1))
    whole, _, frac = f"{abs(rounded):,f}".partition(".")
    sign = "-" if rounded < 0 else ""
    whole = whole.replace(",", GROUP_SEP.get(locale, ","))
    return f"{sign}{whole}{DECIMAL_SEP.get(locale, '.') + frac if frac else ''}"


def formal_time(moment: datetime, tz: ZoneInfo, locale: str = "vi") -> str:
    """Write a moment as formal notices do: "04 giờ 55, ngày 02/12/2026"."""
    local = moment.astimezone(tz)
    if locale == "vi":
        return f"{local:%H} giờ {local:%M}, ngày {local:%d/%m/%Y}"
    return f"{local:%H:%M} on {local:%d/%m/%Y}"


@dataclass(frozen=True)
class FormalTime:
    """A message parameter to write as a formal notice does ("08 giờ 00, ngày 02/12/2026")."""

    moment: datetime
