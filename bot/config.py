"""Settings: a TOML file, overridden by REFORMBOT_* environment variables."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.cron import cron_trigger
from bot.i18n import DEFAULT_LOCALE, normalize_locale, t

ENV_PREFIX = "REFORMBOT_"
CONFIG_ENV = "REFORMBOT_CONFIG"
DEFAULT_CONFIG = Path("config.toml")
TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,100}$")
SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
ZALO_TOKEN_RE = re.compile(r"^\d{1,25}:[A-Za-z0-9_-]{8,200}$")
ZALO_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{8,256}$")
PLACEHOLDERS = {"", "changeme", "change_me", "change-me", "your-token", "token", "secret", "xxx"}
# REFORMBOT_* variables that are not settings: the config file, Chromium for PDFs, the tests.
OTHER_ENV = {"REFORMBOT_CONFIG", "REFORMBOT_CHROMIUM"}
OTHER_ENV_PREFIX = "REFORMBOT_TEST_"


def _refuse_placeholder(value: SecretStr | None) -> SecretStr | None:
    """Reject secrets that are still the example's placeholder."""
    if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDERS:
        raise ValueError("placeholder")
    return value


def _refuse_moved(v: object, info: ValidationInfo) -> None:
    """Refuse a webhook address key of Zalo's: one server per worker serves every channel."""
    if v is not None:
        raise ValueError(f"{info.field_name}_moved")


class TelegramSettings(BaseModel):
    """How the bot reaches Telegram (or the sandbox); on when a token is set, unless disabled.

    `webhook_listen` and `webhook_port` are the worker's one webhook server: every channel's
    webhook path (Telegram's, the Zalo Bot API's, the Official Account's) is served there.
    """

    enabled: bool = False
    token: SecretStr | None = None
    username: str | None = None
    api_base_url: str = "https://api.telegram.org/bot"
    api_file_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(8443, ge=1, le=65535)
    webhook_path: str = "telegram"
    webhook_secret: SecretStr | None = None
    webhook_max_body_bytes: int = Field(1_048_576, ge=1024)

    @field_validator("token")
    @classmethod
    def _token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        """Check the token looks like a Bot API token."""
        v = _refuse_placeholder(v)
        if v is not None and not TOKEN_RE.match(v.get_secret_value()):
            raise ValueError("token_shape")
        return v

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, v: SecretStr | None) -> SecretStr | None:
        """Check the webhook secret is one Telegram accepts."""
        v = _refuse_placeholder(v)
        if v is not None and not SECRET_TOKEN_RE.match(v.get_secret_value()):
            raise ValueError("secret_shape")
        return v

    @field_validator("username")
    @classmethod
    def _strip_at(cls, v: str | None) -> str | None:
        """Accept the username with or without its @."""
        return v.lstrip("@") if v else v

    @model_validator(mode="before")
    @classmethod
    def _on_with_a_token(cls, data: Any) -> Any:
        """Turn Telegram on when a token is given and `enabled` is not."""
        if isinstance(data, dict) and "enabled" not in data:
            return {**data, "enabled": data.get("token") is not None}
        return data

    @model_validator(mode="after")
    def _webhook_complete(self) -> TelegramSettings:
        """Require a token when on, and a public URL and a secret in webhook mode."""
        if not self.enabled:
            return self
        if self.token is None:
            raise ValueError("telegram_token_missing")
        if self.mode == "webhook":
            if not self.webhook_url:
                raise ValueError("webhook_url_missing")
            if self.webhook_secret is None:
                raise ValueError("webhook_secret_missing")
        return self


class ZaloOASettings(BaseModel):
    """A Zalo Official Account ([zalo.oa]): customer-service messages and its webhook."""

    enabled: bool = False
    app_id: str | None = Field(None, pattern=r"^\d{1,32}$")
    oa_id: str | None = Field(None, pattern=r"^\d{1,32}$")
    secret_key: SecretStr | None = None
    oa_secret_key: SecretStr | None = None
    refresh_token: SecretStr | None = None
    api_base: str = "https://openapi.zalo.me"
    oauth_base: str = "https://oauth.zaloapp.com"
    webhook_path: str = "zalo-oa"
    # Served by the worker's one webhook server now (telegram.webhook_listen/webhook_port)
    webhook_listen: str | None = None
    webhook_port: int | None = None
    token_check_seconds: float = Field(600.0, ge=1, le=86400)
    # Zalo retries a failed event for about two hours with its first timestamp; replays inside
    # the window are still handled once (seen updates are kept 24 hours).
    replay_window_seconds: int = Field(7200, ge=10, le=43200)
    messaging_window_hours: int = Field(168, ge=1, le=168)
    quick_replies: bool = True

    @field_validator("secret_key", "oa_secret_key", "refresh_token")
    @classmethod
    def _no_placeholder(cls, v: SecretStr | None) -> SecretStr | None:
        """Refuse the example's placeholders."""
        return _refuse_placeholder(v)

    _moved = field_validator("webhook_listen", "webhook_port")(_refuse_moved)

    @model_validator(mode="after")
    def _complete(self) -> ZaloOASettings:
        """Require what an enabled Official Account cannot work without, naming the key."""
        if self.enabled:
            for key in ("app_id", "oa_id", "secret_key", "oa_secret_key", "refresh_token"):
                if getattr(self, key) is None:
                    raise ValueError(f"zalo_oa_{key}_missing")
        return self


class ZaloSettings(BaseModel):
    """How the bot reaches the Zalo Bot API (or the sandbox); `oa` sits beside these keys."""

    enabled: bool = False
    bot_token: SecretStr | None = None
    api_base: str = "https://bot-api.zaloplatforms.com"
    bot_link: str | None = None
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout: int = Field(30, ge=1, le=60)
    webhook_url: str | None = None
    # Served by the worker's one webhook server now (telegram.webhook_listen/webhook_port)
    webhook_listen: str | None = None
    webhook_port: int | None = None
    webhook_path: str = "zalo"
    webhook_secret: SecretStr | None = None
    webhook_max_body_bytes: int = Field(1_048_576, ge=1024)
    rate: float = Field(10.0, gt=0, le=1000)
    chat_rate: float = Field(1.0, gt=0, le=30)
    # Official Account keys (reserved; the [zalo.oa] table replaces them)
    oa_access_token: SecretStr | None = None
    app_secret: SecretStr | None = None
    oa: ZaloOASettings = ZaloOASettings()

    _moved = field_validator("webhook_listen", "webhook_port")(_refuse_moved)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        """Check the token looks like a Zalo Bot API token."""
        v = _refuse_placeholder(v)
        if v is not None and not ZALO_TOKEN_RE.match(v.get_secret_value()):
            raise ValueError("zalo_token_shape")
        return v

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, v: SecretStr | None) -> SecretStr | None:
        """Check the webhook secret is one the Zalo Bot API accepts (8-256 characters)."""
        v = _refuse_placeholder(v)
        if v is not None and not ZALO_SECRET_RE.match(v.get_secret_value()):
            raise ValueError("zalo_secret_shape")
        return v

    @field_validator("api_base", "webhook_url", "bot_link")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        """Require an http(s) address."""
        if v is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError("zalo_url")
        return v

    @model_validator(mode="after")
    def _complete(self) -> ZaloSettings:
        """Require a token when enabled, and a public URL and a secret in webhook mode."""
        if not self.enabled:
            return self
        if self.bot_token is None:
            raise ValueError("zalo_token_missing")
        if self.mode == "webhook":
            if not self.webhook_url:
                raise ValueError("zalo_webhook_url_missing")
            if self.webhook_secret is None:
                raise ValueError("zalo_webhook_secret_missing")
        return self


class DatabaseSettings(BaseModel):
    """Where the data lives."""

    url: str = "sqlite+aiosqlite:///data/reformbot.db"
    echo: bool = False
    migrate_on_start: bool = True

    @field_validator("url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        """Accept the async SQLite and PostgreSQL drivers; upgrade bare schemes."""
        if v.startswith("sqlite:///"):
            v = "sqlite+aiosqlite:///" + v.removeprefix("sqlite:///")
        elif v.startswith(("postgresql://", "postgres://")):
            v = "postgresql+asyncpg://" + v.split("://", 1)[1]
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("db_scheme")
        _parse_db_url(v)
        return v


def _parse_db_url(v: str) -> None:
    """Refuse a database URL SQLAlchemy cannot parse, or whose port is not a port."""
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(v)
        port = url.port
    except (ArgumentError, ValueError):
        raise ValueError("db_url") from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("db_url")


class SchedulerSettings(BaseModel):
    """Clock settings for jobs."""

    timezone: str = "Asia/Ho_Chi_Minh"
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "07:00"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        """Require an IANA time zone name."""
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("timezone") from exc
        return v

    @field_validator("quiet_hours_start", "quiet_hours_end")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        """Require HH:MM."""
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
            raise ValueError("hh_mm")
        return v

    @property
    def tz(self) -> ZoneInfo:
        """Return the display time zone."""
        return ZoneInfo(self.timezone)


class I18nSettings(BaseModel):
    """Languages."""

    default_locale: Literal["vi", "en"] = "vi"


class BootstrapAdmin(BaseModel):
    """A chat account that is an administrator before any staff import."""

    channel: Literal["telegram", "zalo"] = "telegram"
    external_id: str = Field(pattern=r"^[0-9A-Za-z_-]{1,64}$")
    full_name: str = Field("Quản trị hệ thống", min_length=1, max_length=200)


class BootstrapSettings(BaseModel):
    """Accounts set up at start."""

    admins: list[BootstrapAdmin] = []


class InviteSettings(BaseModel):
    """Staff invitations."""

    valid_days: int = Field(14, ge=1, le=365)


class DeliverySettings(BaseModel):
    """The outbox dispatcher: Telegram's limits, retries and leases."""

    global_rate: float = Field(30.0, gt=0, le=1000)
    chat_rate: float = Field(1.0, gt=0, le=30)
    group_per_minute: float = Field(20.0, gt=0, le=600)
    paid_broadcast: bool = False
    paid_rate: float = Field(1000.0, gt=0, le=1000)
    max_attempts: int = Field(5, ge=1, le=50)
    backoff_seconds: float = Field(5.0, gt=0, le=3600)
    batch_size: int = Field(200, ge=1, le=5000)
    lease_seconds: int = Field(60, ge=5, le=3600)
    poll_seconds: float = Field(1.0, gt=0, le=60)


class CalendarSettings(BaseModel):
    """Working days and hours (Vietnamese public holidays come from the holidays package)."""

    working_hours: list[str] = ["07:30-11:30", "13:30-17:00"]
    extra_days_off: list[date] = []
    make_up_working_days: list[date] = []

    @field_validator("working_hours")
    @classmethod
    def _ranges(cls, v: list[str]) -> list[str]:
        """Require ordered HH:MM-HH:MM ranges."""
        last = ""
        for item in v:
            m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)", item)
            if not m or item[:5] >= item[6:] or item[:5] < last:
                raise ValueError("working_hours")
            last = item[6:]
        if not v:
            raise ValueError("working_hours")
        return v

    @model_validator(mode="after")
    def _no_day_both_ways(self) -> CalendarSettings:
        """Refuse a date listed both as a day off and as a make-up working day."""
        if set(self.extra_days_off) & set(self.make_up_working_days):
            raise ValueError("day_both_ways")
        return self


class DirectiveSettings(BaseModel):
    """Chasing unacknowledged directives, in working hours after the push."""

    remind_after_hours: list[float] = [4.0, 8.0]
    escalate_head_after_hours: float = Field(12.0, gt=0)
    escalate_admins_after_hours: float = Field(16.0, gt=0)
    default_ack_days: int = Field(2, ge=1, le=60)
    sweep_seconds: int = Field(60, ge=5, le=3600)


class TaskSettings(BaseModel):
    """The reminder ladder of deadline tasks, and the weekly digests."""

    before_days: list[int] = [7, 3, 1]
    remind_at: str = "08:00"
    overdue_daily: bool = True
    leadership_after_days: int = Field(3, ge=1, le=60)
    digest_cron: str = "30 7 * * mon"
    sweep_seconds: int = Field(60, ge=5, le=3600)

    @field_validator("before_days")
    @classmethod
    def _positive_days(cls, v: list[int]) -> list[int]:
        """Require distinct positive day counts, largest first."""
        if any(d < 1 or d > 60 for d in v) or len(set(v)) != len(v):
            raise ValueError("before_days")
        return sorted(v, reverse=True)

    @field_validator("remind_at")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        """Require HH:MM."""
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
            raise ValueError("hh_mm")
        return v

    @field_validator("digest_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        """Require a crontab expression APScheduler understands."""
        try:
            cron_trigger(v, ZoneInfo("Asia/Ho_Chi_Minh"))
        except ValueError:
            raise ValueError("cron") from None
        return v


class RatingSettings(BaseModel):
    """Citizen satisfaction ratings."""

    flow_minutes: int = Field(30, ge=5, le=1440)
    daily_limit_per_unit: int = Field(3, ge=1, le=100)
    comment_max: int = Field(1000, ge=100, le=1000)
    case_working_days: int = Field(5, ge=1, le=60)


class SurveySettings(BaseModel):
    """Surveys and awareness campaigns."""

    flow_hours: int = Field(72, ge=1, le=720)
    min_group: int = Field(5, ge=2, le=100)
    reminders_max: int = Field(2, ge=0, le=10)
    remind_every_hours: int = Field(16, ge=1, le=200)


class AgencySettings(BaseModel):
    """The issuing agency printed on apology slips and QR cards."""

    name: str = Field("Sở Giáo dục và Đào tạo", min_length=1, max_length=200)
    symbol: str = Field("SGDĐT", min_length=1, max_length=32)
    place: str | None = Field(None, max_length=100)


class DossierSettings(BaseModel):
    """Late dossiers and their apologies."""

    apology_lead_days: int = Field(1, ge=0, le=30)


class ReportWeights(BaseModel):
    """Weights of the emulation score: each indicator counts in proportion to its weight."""

    ack: float = Field(15.0, ge=0, le=100)
    tasks: float = Field(25.0, ge=0, le=100)
    satisfaction: float = Field(25.0, ge=0, le=100)
    feedback: float = Field(15.0, ge=0, le=100)
    dossiers: float = Field(20.0, ge=0, le=100)

    @model_validator(mode="after")
    def _some_weight(self) -> ReportWeights:
        """Refuse weights that are all zero (nothing would be scored)."""
        if not any(self.as_dict().values()):
            raise ValueError("weights_zero")
        return self

    def as_dict(self) -> dict[str, float]:
        """Return the weights by indicator name."""
        return {name: float(getattr(self, name)) for name in type(self).model_fields}


class ReportSettings(BaseModel):
    """The per-unit scoreboard, its monthly sending, and the letterhead of the XLSX reports."""

    min_ratings: int = Field(10, ge=0, le=100000)
    weights: ReportWeights = ReportWeights()
    monthly_cron: str = "0 8 1 * *"
    trend_periods: int = Field(6, ge=2, le=24)
    agency_parent: str | None = Field(None, max_length=200)
    agency_name: str | None = Field(None, max_length=200)
    signer_title: str = Field("GIÁM ĐỐC", min_length=1, max_length=200)
    signer_name: str | None = Field(None, max_length=100)

    @field_validator("monthly_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        """Require a crontab expression APScheduler understands."""
        try:
            cron_trigger(v, ZoneInfo("Asia/Ho_Chi_Minh"))
        except ValueError:
            raise ValueError("cron") from None
        return v


class DashboardSettings(BaseModel):
    """The web dashboard for leadership and unit heads, served on a port of its own."""

    enabled: bool = False
    host: str = Field("127.0.0.1", min_length=1, max_length=255)
    port: int = Field(8090, ge=1, le=65535)
    public_url: str | None = None
    session_minutes: int = Field(60, ge=5, le=1440)
    session_max_hours: int = Field(12, ge=1, le=168)
    link_minutes: int = Field(10, ge=1, le=60)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        """Require an http(s) address without a trailing slash."""
        if v is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError("dashboard_url")
        return v.rstrip("/") if v is not None else None

    @model_validator(mode="after")
    def _complete(self) -> DashboardSettings:
        """Require the public address the sign-in links point to when enabled."""
        if self.enabled and not self.public_url:
            raise ValueError("dashboard_url_missing")
        return self

    @property
    def secure(self) -> bool:
        """Tell whether the dashboard is reached over https (secure cookies, HSTS)."""
        return bool(self.public_url and self.public_url.startswith("https://"))


class LoggingSettings(BaseModel):
    """Log output."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(BaseSettings):
    """All settings of one installation."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    telegram: TelegramSettings = TelegramSettings()
    zalo: ZaloSettings = ZaloSettings()
    database: DatabaseSettings = DatabaseSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    i18n: I18nSettings = I18nSettings()
    bootstrap: BootstrapSettings = BootstrapSettings()
    invites: InviteSettings = InviteSettings()
    delivery: DeliverySettings = DeliverySettings()
    calendar: CalendarSettings = CalendarSettings()
    directives: DirectiveSettings = DirectiveSettings()
    tasks: TaskSettings = TaskSettings()
    ratings: RatingSettings = RatingSettings()
    surveys: SurveySettings = SurveySettings()
    dossiers: DossierSettings = DossierSettings()
    agency: AgencySettings = AgencySettings()
    reports: ReportSettings = ReportSettings()
    dashboard: DashboardSettings = DashboardSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Let environment variables win over the file's values (passed as init kwargs)."""
        return env_settings, init_settings


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration: key, reason (an i18n key) and source."""

    key: str
    reason: str
    source: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """Return the reason in English, for logs and exceptions."""
        return t(self.reason, "en", **self.params)


def _reason(err: Any) -> tuple[str, dict[str, Any]]:
    """Map a pydantic error to a catalog key and its parameters."""
    if err["type"] == "value_error":
        return f"config.error.{err['ctx']['error']}", {}
    known = {
        "missing",
        "extra_forbidden",
        "literal_error",
        "int_parsing",
        "bool_parsing",
        "string_type",
        "greater_than",
        "greater_than_equal",
        "less_than_equal",
        "float_parsing",
        "string_pattern_mismatch",
        "too_short",
        "string_too_short",
        "string_too_long",
        "list_type",
        "dict_type",
        "model_type",
    }
    if err["type"] in known:
        ctx = {k: str(v) for k, v in (err.get("ctx") or {}).items()}
        return f"config.error.{err['type']}", {"input": str(err.get("input"))[:60], **ctx}
    return "config.error.other", {"detail": err["msg"]}


class ConfigError(Exception):
    """The configuration cannot be used; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("; ".join(f"{p.key}: {p.message} ({p.source})" for p in problems))
        self.problems = problems


def resolve_path(path: Path | str | None) -> Path | None:
    """Return the config file to read: the argument, $REFORMBOT_CONFIG, or ./config.toml."""
    if path is not None:
        return Path(path)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def _env_name(key: str) -> str:
    """Return the environment variable that overrides a dotted key."""
    return ENV_PREFIX + key.replace(".", "__").upper()


def _section(annotation: Any) -> type[BaseModel] | None:
    """Return the model of a section, or of the items of a list of tables, else None."""
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation) or (None,)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unknown(key: str, known: list[str], prefix: str, source: str) -> ConfigProblem:
    """Refuse an unknown key, suggesting the closest valid one."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:
        return ConfigProblem(prefix + key, "config.error.extra_forbidden", source)
    return ConfigProblem(
        prefix + key, "config.error.unknown_key", source, {"suggestion": prefix + close[0]}
    )


def _check_table(
    data: dict[str, Any], model: type[BaseModel], prefix: str, source: str
) -> list[ConfigProblem]:
    """Find misspelled keys and true/false given for numbers in a TOML table, at any depth."""
    problems: list[ConfigProblem] = []
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            problems.append(_unknown(key, list(fields), prefix, source))
            continue
        annotation = fields[key].annotation
        sub = _section(annotation)
        if sub is not None and isinstance(value, dict):
            problems += _check_table(value, sub, f"{prefix}{key}.", source)
        elif sub is not None and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    problems += _check_table(item, sub, f"{prefix}{key}.{i}.", source)
        elif isinstance(value, bool) and annotation in (int, float):
            reason = "int_parsing" if annotation is int else "float_parsing"
            params = {"input": str(value).lower()}
            problems.append(ConfigProblem(prefix + key, f"config.error.{reason}", source, params))
        elif (
            isinstance(value, list)
            and get_args(annotation) in ((int,), (float,))
            and any(isinstance(item, bool) for item in value)
        ):
            params = {"input": str(value).lower()}
            problems.append(ConfigProblem(prefix + key, "config.error.int_list", source, params))
    return problems


def _closest_path(parts: list[str], model: type[BaseModel] | None) -> list[str] | None:
    """Return the setting path nearest to the given one (itself if valid), or None."""
    if not parts:
        return []
    fields = list(model.model_fields) if model is not None else []
    head = (
        parts[0]
        if parts[0] in fields
        else next(iter(difflib.get_close_matches(parts[0], fields, n=1, cutoff=0.6)), None)
    )
    if head is None or model is None:
        return None
    annotation = model.model_fields[head].annotation
    sub = None if get_origin(annotation) is list else _section(annotation)
    rest = _closest_path(parts[1:], sub)
    return None if rest is None else [head, *rest]


def _check_env(environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Find REFORMBOT_* variables that name no setting, suggesting the closest valid one."""
    problems: list[ConfigProblem] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_ENV:
            continue
        if upper.startswith(OTHER_ENV_PREFIX):
            continue
        parts = upper.removeprefix(ENV_PREFIX).lower().split("__")
        fixed = _closest_path(parts, Settings)
        if fixed == parts:
            continue
        if fixed is None:
            problems.append(ConfigProblem(name, "config.error.extra_forbidden", "environment"))
        else:
            hint = {"suggestion": _env_name(".".join(fixed))}
            problems.append(ConfigProblem(name, "config.error.unknown_key", "environment", hint))
    return problems


def load_settings(path: Path | str | None = None, *, required: bool = False) -> Settings:
    """Read and validate settings; raise ConfigError naming each bad key and its source."""
    file = resolve_path(path)
    data: dict[str, Any] = {}
    source = str(file) if file else "defaults"
    if file is not None:
        if not file.exists():
            raise ConfigError([ConfigProblem("-", "config.error.no_file", str(file))])
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problem = ConfigProblem("-", "config.error.toml", str(file), {"detail": str(exc)})
            raise ConfigError([problem]) from exc
    elif required:
        raise ConfigError([ConfigProblem("-", "config.error.no_file", "-")])
    early = _check_table(data, Settings, "", source) + _check_env(os.environ)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems = list(early)
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "-"
            if any(p.key == key for p in early):
                continue
            env = _env_name(key)
            where = f"environment {env}" if env in os.environ else source
            reason, params = _reason(err)
            problems.append(ConfigProblem(key, reason, where, params))
        raise ConfigError(problems) from exc
    if early:
        raise ConfigError(early)
    return settings


NO_CHANNEL_KEYS = "telegram.token, zalo.enabled, zalo.oa.enabled"


def webhook_paths(settings: Settings) -> dict[str, str]:
    """Return the webhook path each channel posts to on this worker's server, by its key."""
    tg, zalo = settings.telegram, settings.zalo
    served = [  # the key's parts: a dotted literal would read as a catalog key
        (("telegram",), tg.webhook_path, tg.enabled and tg.mode == "webhook"),
        (("zalo",), zalo.webhook_path, zalo.enabled and zalo.mode == "webhook"),
        (("zalo", "oa"), zalo.oa.webhook_path, zalo.oa.enabled),
    ]
    return {
        ".".join((*section, "webhook_path")): "/" + path.strip("/")
        for section, path, on in served
        if on
    }


def run_problems(settings: Settings, source: str = "defaults") -> list[ConfigProblem]:
    """Find what stops `reformbot run` in valid settings: no channel on, a bootstrap admin on a
    channel that is off, one webhook path for two channels."""
    if not (settings.telegram.enabled or settings.zalo.enabled or settings.zalo.oa.enabled):
        return [ConfigProblem(NO_CHANNEL_KEYS, "config.error.no_channel", source)]
    problems: list[ConfigProblem] = []
    on = {"telegram": settings.telegram.enabled, "zalo": settings.zalo.enabled}
    for i, admin in enumerate(settings.bootstrap.admins):
        if not on[admin.channel]:  # they could never be reached, nor talk to the bot
            key = ".".join(("bootstrap", "admins", str(i), "channel"))
            off = {"channel": str(admin.channel)}
            problems.append(ConfigProblem(key, "config.error.admin_channel_off", source, off))
    seen: dict[str, str] = {}
    for key, path in webhook_paths(settings).items():
        if path in seen:
            twice = {"path": path, "other": seen[path]}
            problems.append(ConfigProblem(key, "config.error.webhook_path_twice", source, twice))
        seen.setdefault(path, key)
    return problems


LOCALE_ENV = f"{ENV_PREFIX}I18N__DEFAULT_LOCALE"
CONFIG_FLAGS = ("--config", "-c")


def _config_arg(args: Sequence[str]) -> str | None:
    """Return the value of --config/-c among the arguments, if any."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in CONFIG_FLAGS and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def configured_locale(args: Sequence[str] = ()) -> str:
    """Return the configured language: environment, else --config/REFORMBOT_CONFIG/config.toml."""
    if os.environ.get(LOCALE_ENV):
        return normalize_locale(os.environ[LOCALE_ENV])
    file = resolve_path(_config_arg(args))
    if file is None or not file.is_file():
        return DEFAULT_LOCALE
    try:
        data = tomllib.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return DEFAULT_LOCALE
    section = data.get("i18n")
    value = section.get("default_locale") if isinstance(section, dict) else None
    return normalize_locale(value) if isinstance(value, str) else DEFAULT_LOCALE
