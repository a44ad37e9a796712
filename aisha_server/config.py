"""Typed settings read from the environment and `.env` files.

Names and defaults are the System Administrator Guide's (Appendix A, 9.5-9.7, 13.8).
Variables the guide does not name but the Python deployment needs are prefixed
`AISHA_` or follow the guide's families (`SMTP_FROM`).  `load_settings` turns every
problem into one readable line; callers never see a pydantic traceback.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets a careless copy of the guide or .env.example would leave in place.
PLACEHOLDER_SECRETS = frozenset(
    {
        "your-secure-random-string-here",
        "change-me",
        "changeme",
        "secret",
        "jwt_secret",
        "development",
    }
)
MIN_JWT_SECRET_LENGTH = 32


class LogLevel(StrEnum):
    ERROR = "error"
    WARN = "warn"
    INFO = "info"
    DEBUG = "debug"


class CarePolicyMode(StrEnum):
    STRICT = "strict"
    PERMISSIVE = "permissive"
    READONLY = "readonly"


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


OptionalStr = Annotated[str | None, BeforeValidator(_blank_to_none)]
CommaList = Annotated[list[str], BeforeValidator(_comma_list)]


def default_data_dir() -> Path:
    """Where the embedded database and local state live when nothing else is said."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aisha"


class Settings(BaseSettings):
    """Every setting of the server process, declared once."""

    model_config = SettingsConfigDict(
        env_file=None,
        extra="ignore",
        case_sensitive=True,
        populate_by_name=True,
        # `ALLOWED_ORIGINS=a,b` is a comma list in the guide, not JSON.
        enable_decoding=False,
    )

    # -- server (Appendix A "Server Settings") -------------------------------------------
    PORT: int = Field(3001, ge=0, le=65535, description="HTTP port; 0 picks a free one")
    HOST: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 for all")
    FRONTEND_URL: str = Field("http://localhost:4000", description="Frontend URL for CORS")
    ALLOWED_ORIGINS: CommaList = Field(
        default_factory=lambda: ["http://localhost:4000"],
        description="Comma-separated allowed CORS origins",
    )
    NODE_ENV: str = Field("production", description="development, staging or production")
    AISHA_DATA_DIR: Path = Field(
        default_factory=default_data_dir,
        description="Directory for the embedded SQLite database and server state",
    )

    # -- database ------------------------------------------------------------------------
    DATABASE_URL: OptionalStr = Field(
        None,
        description="postgresql://user:pass@host:5432/db; empty = embedded SQLite in the data dir",
    )
    USE_SUPABASE_PROD: bool = Field(False, description="Not supported; use DATABASE_URL")
    SUPABASE_URL: OptionalStr = Field(None, description="Not used (Supabase mode is not supported)")
    SUPABASE_SERVICE_ROLE_KEY: OptionalStr = Field(
        None, description="Not used (Supabase mode is not supported)"
    )
    AISHA_DB_APP_ROLE: str = Field(
        "aisha_app",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Non-owner PostgreSQL role the server works as (row-level security)",
    )
    AISHA_DB_POOL_SIZE: int = Field(10, ge=1, le=200, description="PostgreSQL pool size")
    AISHA_SQLITE_READERS: int = Field(4, ge=1, le=64, description="SQLite reader threads")
    AISHA_SQLITE_MMAP_MB: int = Field(
        1024,
        ge=0,
        le=65536,
        description="SQLite: how much of the database file list reads map into memory (0 = off)",
    )

    # -- security ------------------------------------------------------------------------
    JWT_SECRET: OptionalStr = Field(None, description="Secret for JWT signing (>= 32 chars)")
    API_KEY: OptionalStr = Field(None, description="API key for webhook validation")
    RATE_LIMIT_WINDOW_MS: int = Field(60000, ge=1000, description="Rate limit window (ms)")
    RATE_LIMIT_MAX: int = Field(120, ge=1, description="Max requests per window per client")
    AUTH_RATE_LIMIT_MAX: int = Field(5, ge=1, description="Max auth attempts per window")
    PRODUCTION_READONLY: bool = Field(False, description="Refuse every mutation (safety toggle)")
    ACCESS_TOKEN_TTL_SECONDS: int = Field(900, ge=30, le=86400, description="Access JWT life")
    REFRESH_TOKEN_TTL_DAYS: int = Field(30, ge=1, le=365, description="Refresh token life")
    AISHA_SYNC_RETENTION_DAYS: int = Field(
        90,
        ge=1,
        le=3650,
        description="Days the sync change log (field history, tombstones) is kept; older"
        " replicas must resync",
    )
    PASSWORD_RESET_TTL_MINUTES: int = Field(60, ge=5, le=1440, description="Reset link life")
    AISHA_MAX_BODY_BYTES: int = Field(
        1_048_576, ge=1024, description="Largest JSON body accepted (bytes)"
    )
    AISHA_MAX_UPLOAD_BYTES: int = Field(
        20 * 1_048_576, ge=1024, description="Largest file upload accepted (bytes)"
    )

    # -- integrations --------------------------------------------------------------------
    SMTP_HOST: OptionalStr = Field(None, description="Email server hostname")
    SMTP_PORT: int = Field(587, ge=1, le=65535, description="Email server port")
    SMTP_USER: OptionalStr = Field(None, description="Email username")
    SMTP_PASS: OptionalStr = Field(None, description="Email password")
    SMTP_FROM: str = Field("AiSHA <no-reply@localhost>", description="Sender of system mail")
    SMTP_STARTTLS: bool = Field(
        True, description="Use STARTTLS when the server offers it (false for local sinks)"
    )
    N8N_HOST: OptionalStr = Field(None, description="n8n automation URL")
    N8N_API_KEY: OptionalStr = Field(None, description="n8n API key")
    REDIS_URL: OptionalStr = Field(None, description="Shared rate-limit counters when set")

    # -- logging -------------------------------------------------------------------------
    LOG_LEVEL: LogLevel = Field(LogLevel.INFO, description="error, warn, info, debug")
    ENABLE_PERFORMANCE_LOGGING: bool = Field(True, description="Log slow requests")

    # -- campaign worker and webhooks (9.5) ----------------------------------------------
    CAMPAIGN_WORKER_ENABLED: bool = Field(
        False, description="Process scheduled AI campaigns in the background"
    )
    CAMPAIGN_WORKER_INTERVAL_MS: int = Field(
        30000, ge=100, description="Campaign worker polling interval (ms)"
    )
    WEBHOOKS_ENABLED: bool = Field(False, description="Emit lifecycle webhooks (table webhook)")

    # -- call flow and AI (9.6, 9.7) -----------------------------------------------------
    USE_BRAID_MCP_TRANSCRIPT_ANALYSIS: bool = Field(
        False, description="Analyse call transcripts with the AI hub (else pattern matching)"
    )
    BRAID_MCP_URL: OptionalStr = Field(
        None, description="External AI hub URL; empty = the hub inside this server (/mcp/run)"
    )
    TRANSCRIPT_ANALYSIS_MODEL: str = Field(
        "gpt-4o-mini", description="Model for transcript analysis"
    )
    OPENAI_API_KEY: OptionalStr = Field(
        None, description="Last-resort OpenAI key (after tenant and system settings)"
    )
    OPENAI_BASE_URL: OptionalStr = Field(
        None, description="OpenAI-compatible API base URL (empty = OpenAI)"
    )
    DEFAULT_OPENAI_MODEL: str = Field("gpt-4o-mini", description="Default LLM model")

    # -- C.A.R.E. (13.8) -----------------------------------------------------------------
    CARE_ENABLED: bool = Field(
        False, description="C.A.R.E. master kill switch (false = no autonomous actions)"
    )
    CARE_POLICY_MODE: CarePolicyMode = Field(
        CarePolicyMode.STRICT, description="strict, permissive or readonly"
    )
    CARE_SENTIMENT_THRESHOLD: float = Field(
        0.5, ge=0.0, le=1.0, description="0.0-1.0, lower = more sensitive"
    )
    CARE_LEAD_STAGNANT_DAYS: int = Field(7, ge=1, description="Days before a lead is stagnant")
    CARE_DEAL_DECAY_DAYS: int = Field(3, ge=1, description="Days before a high-value deal decays")
    CARE_ACTIVITY_OVERDUE_THRESHOLD: int = Field(
        1, ge=0, description="Days past due before a task is overdue"
    )
    CARE_OPPORTUNITY_HOT_DAYS: int = Field(
        2, ge=1, description="Days without contact for a hot opportunity"
    )
    CARE_WORKFLOW_TRIGGERS_ENABLED: bool = Field(
        False, description="POST escalations to the workflow webhook"
    )
    CARE_WORKFLOW_ESCALATION_WEBHOOK_URL: OptionalStr = Field(
        None, description="Workflow webhook URL"
    )
    CARE_WORKFLOW_WEBHOOK_SECRET: OptionalStr = Field(
        None, description="HMAC-SHA256 secret for X-AISHA-SIGNATURE"
    )
    CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS: int = Field(
        3000, ge=100, description="Webhook HTTP timeout (ms)"
    )
    CARE_WORKFLOW_WEBHOOK_MAX_RETRIES: int = Field(
        2, ge=0, le=20, description="Webhook retry attempts"
    )
    CARE_AUDIT_LOG_RETENTION_DAYS: int = Field(
        90, ge=1, description="Days care_audit_log rows are kept"
    )
    CARE_WORKER_ENABLED: bool = Field(
        True, description="Run the scheduled C.A.R.E. checks in this server process"
    )
    CARE_SCAN_INTERVAL_SECONDS: int = Field(
        300, ge=1, description="Seconds between scheduled C.A.R.E. scans"
    )
    CARE_SCAN_BATCH_SIZE: int = Field(
        100, ge=1, le=100_000, description="Most records each check raises per tenant and scan"
    )
    CARE_DEAL_DECAY_MIN_AMOUNT: float = Field(
        10_000, ge=0, description="Smallest opportunity amount the deal decay check watches"
    )
    CARE_HOT_PROBABILITY: int = Field(
        70, ge=0, le=100, description="Smallest probability (%) of a hot opportunity"
    )

    # -- sync ----------------------------------------------------------------------------
    SYNC_TOMBSTONE_RETENTION_DAYS: int = Field(
        90, ge=1, description="Days deletions stay in the sync change feed"
    )

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        allowed = ("postgresql://", "postgres://", "postgresql+asyncpg://", "sqlite://")
        if not value.startswith(allowed):
            raise ValueError(
                "must start with postgresql:// (or sqlite:/// for an explicit SQLite file)"
            )
        return value

    @model_validator(mode="after")
    def _supabase_unsupported(self) -> Settings:
        if self.USE_SUPABASE_PROD:
            raise ValueError(
                "USE_SUPABASE_PROD=true is not supported: put the Supabase PostgreSQL "
                "connection string in DATABASE_URL"
            )
        return self

    # -- derived -------------------------------------------------------------------------
    @property
    def is_postgres(self) -> bool:
        return self.DATABASE_URL is not None and not self.DATABASE_URL.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path:
        if self.DATABASE_URL and self.DATABASE_URL.startswith("sqlite:///"):
            return Path(self.DATABASE_URL.removeprefix("sqlite:///"))
        return self.AISHA_DATA_DIR / "aisha.db"

    def jwt_secret_problem(self) -> str | None:
        """Why the JWT secret is unfit for a real deployment, or None."""
        secret = self.JWT_SECRET
        if not secret:
            return 'JWT_SECRET: missing (generate one: python -c "import secrets; print(secrets.token_hex(32))")'
        if secret.strip().lower() in PLACEHOLDER_SECRETS:
            return "JWT_SECRET: is a placeholder value; generate a random one"
        if len(secret) < MIN_JWT_SECRET_LENGTH:
            return f"JWT_SECRET: too short ({len(secret)} chars, need at least {MIN_JWT_SECRET_LENGTH})"
        return None


class ConfigError(Exception):
    """Configuration is unusable; `lines` holds one human sentence per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def env_files(data_dir: Path | None, env_file: Path | None = None) -> list[Path]:
    """The .env files read, lowest priority first; the process environment beats all."""
    files: list[Path] = []
    if data_dir is not None:
        files.append(data_dir / ".env")
    files.append(Path.cwd() / ".env")
    if env_file is not None:
        files.append(env_file)
    return files


def load_settings(
    *,
    data_dir: Path | None = None,
    env_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build settings from environment, `.env` files and explicit overrides (highest)."""
    if env_file is not None and not env_file.is_file():
        raise ConfigError([f"--env-file: {env_file} does not exist"])
    if data_dir is None:
        raw = os.environ.get("AISHA_DATA_DIR")
        data_dir = Path(raw) if raw else None
    files = [f for f in env_files(data_dir, env_file) if f.is_file()]
    values: dict[str, Any] = dict(overrides or {})
    if data_dir is not None:
        values.setdefault("AISHA_DATA_DIR", data_dir)
    try:
        return Settings(_env_file=tuple(files) or None, **values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "configuration"
        message = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        if name != "configuration" and isinstance(given, str | int | float):
            shown = "***" if "SECRET" in name or "PASS" in name or "KEY" in name else given
            lines.append(f"{name}: {message} (got {shown!r})")
        else:
            lines.append(f"{name}: {message}")
    return lines


# Where each section of `.env.example` starts, in declaration order.
SECTIONS = {
    "PORT": "Server (guide Appendix A)",
    "DATABASE_URL": "Database",
    "JWT_SECRET": "Security",
    "SMTP_HOST": "Integrations",
    "LOG_LEVEL": "Logging",
    "CAMPAIGN_WORKER_ENABLED": "Campaign worker and webhooks (guide 9.5)",
    "USE_BRAID_MCP_TRANSCRIPT_ANALYSIS": "Call flow and AI (guide 9.6, 9.7)",
    "CARE_ENABLED": "C.A.R.E. (guide 13.8)",
    "SYNC_TOMBSTONE_RETENTION_DAYS": "Desktop sync",
}
SECRET_MARKERS = ("SECRET", "PASS", "KEY")


def _default_text(name: str) -> str:
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        if name == "ALLOWED_ORIGINS":
            return "http://localhost:4000"
        return ""
    value = field.default
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return value.value
    return str(value)


def env_example() -> str:
    """The `.env.example` text: every setting, its help and its default, from the schema."""
    lines = [
        "# AiSHA server configuration.  Copy to .env (working directory or data directory)",
        "# and adjust; the process environment overrides both.  Generated from",
        "# aisha_server/config.py by `aisha-server config --example`; do not edit by hand.",
    ]
    for name, field in Settings.model_fields.items():
        if name in SECTIONS:
            lines += ["", f"# {'=' * 70}", f"# {SECTIONS[name]}", f"# {'=' * 70}"]
        lines.append(f"# {field.description}")
        default = _default_text(name)
        commented = "# " if default == "" or name == "AISHA_DATA_DIR" else ""
        if name == "AISHA_DATA_DIR":
            default = "~/.local/share/aisha"
        lines.append(f"{commented}{name}={default}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The configuration reference of docs/configuration.md, from the schema."""
    lines = []
    for name, field in Settings.model_fields.items():
        if name in SECTIONS:
            lines += ["", f"### {SECTIONS[name]}", "", "| Variable | Default | Description |",
                      "| --- | --- | --- |"]  # fmt: skip
        default = _default_text(name) or "-"
        if name == "AISHA_DATA_DIR":
            default = "~/.local/share/aisha"
        lines.append(f"| `{name}` | `{default}` | {field.description} |")
    return "\n".join(lines).lstrip("\n") + "\n"


def describe(settings: Settings) -> list[tuple[str, str]]:
    """Resolved settings for display, secrets masked."""
    shown = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            text = ""
        elif any(marker in name for marker in SECRET_MARKERS):
            text = "***"
        elif name == "DATABASE_URL":
            from sqlalchemy.engine import make_url

            text = make_url(str(value)).render_as_string(hide_password=True)
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        shown.append((name, text))
    return shown


def generate_dev_secret() -> str:
    return secrets.token_hex(32)


__all__ = [
    "CarePolicyMode",
    "ConfigError",
    "LogLevel",
    "Settings",
    "generate_dev_secret",
    "load_settings",
]
