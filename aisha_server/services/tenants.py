"""Tenants (guide 4.1-4.4): creation with default module settings, settings validation, slugs.

Tenants are addressed by UUID here; slugs resolve to UUIDs at the edge (`TenantDirectory`).
Creating, listing and deleting tenants is the matrix's Tenant Management (superadmin);
a tenant's admins configure its settings and modules; every user of a tenant reads it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import require, require_allowed
from aisha_server.auth.gate import AuthGate
from aisha_server.auth.principal import Principal
from aisha_server.auth.roles import Capability
from aisha_server.config import Settings
from aisha_server.db.base import utcnow
from aisha_server.db.models import ModuleSetting, Tenant
from aisha_server.db.uow import Database
from aisha_server.errors import (
    TENANT_ACCESS_DENIED,
    Conflict,
    Invalid,
    NotFound,
    PermissionDenied,
)
from aisha_server.services.pagination import Page
from aisha_server.services.tenant_directory import TenantDirectory

TENANT_STATUSES = ("active", "suspended", "archived")
SLUG_MAX = 100
NAME_MAX = 200
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# Date formats a tenant may choose (tokens as shown to users).
DATE_FORMATS: tuple[str, ...] = (
    "MM/DD/YYYY",
    "DD/MM/YYYY",
    "YYYY-MM-DD",
    "DD.MM.YYYY",
    "DD-MM-YYYY",
    "YYYY/MM/DD",
)

# ISO 4217 currencies in circulation (list one, as amended to 2026): the codes a tenant
# may keep its books in.  Fund codes (BOV, CLF, USN ...), precious metals (XAU ...),
# SDR and test codes are left out; so are withdrawn ones (HRK 2023, SLL 2024, ZWL 2024,
# ANG 2025 -> XCG, BGN 2026 -> EUR).
# fmt: off
CURRENCIES: frozenset[str] = frozenset({
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD", "BIF",
    "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY",
    "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD",
    "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR",
    "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR",
    "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF",
    "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU",
    "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW",
    "ZWG",
})
# fmt: on

DEFAULT_SETTINGS: dict[str, Any] = {
    "timezone": "UTC",
    "currency": "USD",
    "date_format": "MM/DD/YYYY",
}


@dataclass(frozen=True, slots=True)
class ModuleDefault:
    name: str
    is_enabled: bool
    settings: dict[str, Any] | None = None


# The module_settings rows every new tenant gets (guide 4.4), in the same transaction.
DEFAULT_MODULES: tuple[ModuleDefault, ...] = (
    ModuleDefault("accounts", True),
    ModuleDefault("contacts", True),
    ModuleDefault("leads", True),
    ModuleDefault(
        "opportunities",
        True,
        {"stages": ["prospect", "qualified", "proposal", "negotiation", "closed"]},
    ),
    ModuleDefault("activities", True),
    ModuleDefault("notes", True),
    ModuleDefault("workflows", True, {"max_workflows": 50}),
    ModuleDefault("ai_campaigns", True),
    ModuleDefault("care", True),
    ModuleDefault("document_processing", False),
    ModuleDefault("realtime_voice", True, {"ptt_enabled": True, "auto_play_responses": True}),
)
MODULES_BY_NAME: dict[str, ModuleDefault] = {m.name: m for m in DEFAULT_MODULES}


# -- validation (also used by the API's pydantic models, so both name the same problems) ----


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def valid_timezone(value: str) -> str:
    value = value.strip()
    if value not in _timezones():
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'America/New_York'"
            ) from None
    return value


def valid_currency(value: str) -> str:
    code = value.strip().upper()
    if code not in CURRENCIES:
        raise ValueError(f"unknown currency {value!r}; use an ISO 4217 code such as 'USD'")
    return code


def valid_date_format(value: str) -> str:
    if value not in DATE_FORMATS:
        raise ValueError(f"unsupported date format {value!r}; one of: {', '.join(DATE_FORMATS)}")
    return value


def valid_slug(value: str) -> str:
    if len(value) > SLUG_MAX:
        raise ValueError(f"must be at most {SLUG_MAX} characters")
    if not SLUG_PATTERN.match(value):
        raise ValueError("lower-case letters, digits and single hyphens only (e.g. 'acme-corp')")
    return value


SETTING_CHECKS = {
    "timezone": valid_timezone,
    "currency": valid_currency,
    "date_format": valid_date_format,
}


def _check(field_name: str, check: Any, value: Any) -> Any:
    if not isinstance(value, str):
        raise Invalid(
            f"Validation failed: {field_name}",
            details=[{"field": field_name, "message": "must be a string", "type": "string_type"}],
        )
    try:
        return check(value)
    except ValueError as exc:
        raise Invalid(
            f"Validation failed: {field_name}",
            details=[{"field": field_name, "message": str(exc), "type": "value_error"}],
        ) from None


def validated_settings(
    settings: Mapping[str, Any], *, field_prefix: str = "settings"
) -> dict[str, Any]:
    """A copy of `settings` with the known keys checked and normalised; other keys kept."""
    out = dict(settings)
    for key, check in SETTING_CHECKS.items():
        if out.get(key) is not None:  # None: "remove" in an update, "default" in a create
            out[key] = _check(f"{field_prefix}.{key}", check, out[key])
    return out


def slugify(name: str) -> str:
    """'Acme Corporation' -> 'acme-corporation' (ASCII, lower case, hyphens)."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:SLUG_MAX].strip("-") or "tenant"


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow merge; a key set to null is removed."""
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not None}


# -- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModuleChange:
    is_enabled: bool | None = None
    settings: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TenantChanges:
    name: str | None = None
    slug: str | None = None
    status: str | None = None
    settings: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    modules: dict[str, ModuleChange] = field(default_factory=dict)

    @property
    def identity_changes(self) -> bool:
        return self.name is not None or self.slug is not None or self.status is not None

    @property
    def empty(self) -> bool:
        return not (
            self.identity_changes
            or self.settings is not None
            or self.metadata is not None
            or self.modules
        )


@dataclass(frozen=True, slots=True)
class TenantSummary:
    id: uuid.UUID
    name: str
    slug: str


# -- serialisation ----------------------------------------------------------------------------


def module_view(row: ModuleSetting) -> dict[str, Any]:
    return {"is_enabled": row.is_enabled, "settings": row.settings}


def tenant_view(tenant: Tenant, modules: list[ModuleSetting] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(tenant.id),  # asyncpg returns its own UUID subclass, unknown to orjson
        "name": tenant.name,
        "slug": tenant.slug,
        "status": tenant.status,
        "settings": tenant.settings or {},
        "metadata": tenant.metadata_ or {},
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
        "version": tenant.version,
        "deleted_at": tenant.deleted_at,
    }
    if modules is not None:
        view["modules"] = {m.module_name: module_view(m) for m in modules}
    return view


def _modules_of(session: Session, tenant_id: uuid.UUID) -> list[ModuleSetting]:
    return list(
        session.scalars(
            select(ModuleSetting)
            .where(ModuleSetting.tenant_id == tenant_id, ModuleSetting.deleted_at.is_(None))
            .order_by(ModuleSetting.module_name)
        )
    )


def _live_tenant(session: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or tenant.deleted_at is not None:
        raise NotFound(f"Tenant not found: {tenant_id}", code="tenant_not_found")
    return tenant


def _slug_taken(session: Session, slug: str, *, other_than: uuid.UUID | None = None) -> bool:
    query = select(Tenant.id).where(Tenant.slug == slug)
    if other_than is not None:
        query = query.where(Tenant.id != other_than)
    return session.scalar(query.limit(1)) is not None


def _free_slug(session: Session, base: str) -> str:
    """`base`, or `base-2`, `base-3` ... whichever is free (deleted tenants keep theirs)."""
    stem = base[: SLUG_MAX - 12]
    taken = set(session.scalars(select(Tenant.slug).where(Tenant.slug.like(f"{stem}%"))))
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: SLUG_MAX - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _slug_conflict(slug: str) -> Conflict:
    return Conflict(
        f"Tenant slug already in use: {slug}",
        code="slug_taken",
        details=[{"field": "slug", "message": "already in use"}],
    )


def apply_module_changes(
    session: Session, tenant_id: uuid.UUID, modules: Mapping[str, ModuleChange]
) -> None:
    """Create missing rows from DEFAULT_MODULES, then toggle and merge settings (null removes)."""
    existing = {m.module_name: m for m in _modules_of(session, tenant_id)}
    for module_name, change in modules.items():
        row = existing.get(module_name)
        if row is None:
            default = MODULES_BY_NAME[module_name]
            row = ModuleSetting(
                tenant_id=tenant_id,
                module_name=module_name,
                is_enabled=default.is_enabled,
                settings=dict(default.settings) if default.settings is not None else None,
            )
            session.add(row)
        if change.is_enabled is not None and change.is_enabled != row.is_enabled:
            row.is_enabled = change.is_enabled
        if change.settings is not None:
            merged = _merge(row.settings or {}, change.settings)
            if merged != row.settings:
                row.settings = merged


class TenantService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        directory: TenantDirectory,
        gate: AuthGate,
        *,
        on_modules_changed: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        # told when a PUT toggles modules (ModuleSettingsService drops its cached answers)
        self._on_modules_changed = on_modules_changed
        self._gate = gate
        self._settings = settings
        self._db = db
        self._directory = directory

    # -- create ---------------------------------------------------------------------------
    async def create(
        self,
        actor: Principal,
        *,
        name: str,
        slug: str | None = None,
        status: str = "active",
        settings: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        require(
            actor,
            Capability.TENANT_MANAGEMENT,
            grant=("tenants", "create"),
            message="Only a superadmin may create tenants",
        )
        tenant, modules = await self._create(name, slug, status, settings, metadata)
        return tenant_view(tenant, modules)

    async def create_from_cli(
        self, name: str, slug: str | None, settings: Mapping[str, Any] | None
    ) -> TenantSummary:
        """`aisha-server create-tenant`: no actor, the operator of the host is trusted."""
        tenant, _ = await self._create(name, slug, "active", settings, None)
        return TenantSummary(tenant.id, tenant.name, tenant.slug)

    async def _create(
        self,
        name: str,
        slug: str | None,
        status: str,
        settings: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> tuple[Tenant, list[ModuleSetting]]:
        name = self._valid_name(name)
        if slug is not None:
            _check("slug", valid_slug, slug)
        self._valid_status(status)
        given = validated_settings(settings or {})
        clean_settings = {**DEFAULT_SETTINGS, **{k: v for k, v in given.items() if v is not None}}

        def write(session: Session) -> tuple[Tenant, list[ModuleSetting]]:
            if slug is not None and _slug_taken(session, slug):
                raise _slug_conflict(slug)
            tenant = Tenant(
                name=name,
                slug=slug or _free_slug(session, slugify(name)),
                status=status,
                settings=clean_settings,
                metadata_=dict(metadata or {}),
            )
            session.add(tenant)
            session.flush()
            modules = [
                ModuleSetting(
                    tenant_id=tenant.id,
                    module_name=m.name,
                    is_enabled=m.is_enabled,
                    settings=dict(m.settings) if m.settings is not None else None,
                )
                for m in DEFAULT_MODULES
            ]
            session.add_all(modules)
            session.flush()
            return tenant, sorted(modules, key=lambda m: m.module_name)

        # A concurrent creation may take a derived slug between our check and the insert
        # (PostgreSQL; SQLite serialises writers): derive again.
        for _attempt in range(3):
            try:
                return await self._db.run(write, system=True)
            except IntegrityError:
                if slug is not None:
                    raise _slug_conflict(slug) from None
        raise Conflict("Could not find a free slug for this tenant; give one", code="slug_taken")

    # -- read -----------------------------------------------------------------------------
    async def get(self, actor: Principal, tenant_id: uuid.UUID) -> dict[str, Any]:
        self._own_tenant(actor, tenant_id)
        require_allowed(actor, "tenants", "read")

        def read(session: Session) -> dict[str, Any]:
            return tenant_view(_live_tenant(session, tenant_id), _modules_of(session, tenant_id))

        return await self._db.run(read, tenant_id=tenant_id, write=False)

    async def list_tenants(
        self,
        actor: Principal,
        *,
        limit: int = 50,
        offset: int = 0,
        q: str | None = None,
        status: str | None = None,
    ) -> Page[dict[str, Any]]:
        require(
            actor,
            Capability.TENANT_MANAGEMENT,
            grant=("tenants", "read"),
            message="Only a superadmin may list tenants",
        )

        def read(session: Session) -> Page[dict[str, Any]]:
            conditions: list[Any] = [Tenant.deleted_at.is_(None)]
            if status:
                conditions.append(Tenant.status == status)
            if q:
                needle = q.strip().lower()
                conditions.append(
                    or_(
                        func.lower(Tenant.name).contains(needle, autoescape=True),
                        Tenant.slug.contains(needle, autoescape=True),
                    )
                )
            total = session.scalar(select(func.count()).select_from(Tenant).where(*conditions))
            rows = session.scalars(
                select(Tenant)
                .where(*conditions)
                .order_by(func.lower(Tenant.name), Tenant.id)
                .limit(limit)
                .offset(offset)
            )
            return Page([tenant_view(t) for t in rows], int(total or 0), limit, offset)

        return await self._db.run(read, system=True, write=False)

    # -- update ---------------------------------------------------------------------------
    async def update(
        self, actor: Principal, tenant_id: uuid.UUID, changes: TenantChanges
    ) -> dict[str, Any]:
        self._own_tenant(actor, tenant_id)
        if changes.empty:
            raise Invalid("Nothing to update", code="no_changes")
        if changes.identity_changes:
            require(
                actor,
                Capability.TENANT_MANAGEMENT,
                grant=("tenants", "update"),
                message="Only a superadmin may change a tenant's name, slug or status",
            )
        require_allowed(
            actor, "tenants", "update", message="Only administrators may change tenant settings"
        )
        name = self._valid_name(changes.name) if changes.name is not None else None
        if changes.slug is not None:
            _check("slug", valid_slug, changes.slug)
        if changes.status is not None:
            self._valid_status(changes.status)
        settings = validated_settings(changes.settings) if changes.settings is not None else None
        for module_name in changes.modules:
            if module_name not in MODULES_BY_NAME:
                raise Invalid(
                    f"Validation failed: modules.{module_name}",
                    details=[
                        {
                            "field": f"modules.{module_name}",
                            "message": "unknown module; one of: "
                            + ", ".join(sorted(MODULES_BY_NAME)),
                        }
                    ],
                )

        def write(session: Session) -> dict[str, Any]:
            tenant = _live_tenant(session, tenant_id)
            if changes.slug is not None and changes.slug != tenant.slug:
                if _slug_taken(session, changes.slug, other_than=tenant.id):
                    raise _slug_conflict(changes.slug)
                tenant.slug = changes.slug
            if name is not None:
                tenant.name = name
            if changes.status is not None:
                tenant.status = changes.status
            if settings is not None:
                merged = _merge(tenant.settings or {}, settings)
                if merged != tenant.settings:
                    tenant.settings = merged
            if changes.metadata is not None:
                merged_meta = _merge(tenant.metadata_ or {}, changes.metadata)
                if merged_meta != tenant.metadata_:
                    tenant.metadata_ = merged_meta
            if changes.modules:
                self._apply_modules(session, tenant.id, changes.modules)
            session.flush()
            return tenant_view(tenant, _modules_of(session, tenant.id))

        try:
            view = await self._db.run(write, system=True)
        except IntegrityError:
            raise _slug_conflict(changes.slug or "") from None
        if changes.slug is not None:
            self._directory.forget()
        if changes.status is not None:
            # a suspended tenant's sessions and keys stop working now, not in 5 seconds
            self._gate.forget_all()
        if changes.modules and self._on_modules_changed is not None:
            self._on_modules_changed(tenant_id)
        return view

    @staticmethod
    def _apply_modules(
        session: Session, tenant_id: uuid.UUID, modules: Mapping[str, ModuleChange]
    ) -> None:
        apply_module_changes(session, tenant_id, modules)

    # -- delete ---------------------------------------------------------------------------
    async def delete(self, actor: Principal, tenant_id: uuid.UUID) -> dict[str, Any]:
        """Soft delete: the tenant is archived and tombstoned; its rows stay for recovery."""
        require(
            actor,
            Capability.TENANT_MANAGEMENT,
            grant=("tenants", "delete"),
            message="Only a superadmin may delete tenants",
        )

        def write(session: Session) -> dict[str, Any]:
            tenant = _live_tenant(session, tenant_id)
            tenant.deleted_at = utcnow()
            tenant.status = "archived"
            session.flush()
            return tenant_view(tenant, _modules_of(session, tenant.id))

        view = await self._db.run(write, system=True)
        self._directory.forget()
        self._gate.forget_all()
        return view

    # -- rules ----------------------------------------------------------------------------
    @staticmethod
    def _own_tenant(actor: Principal, tenant_id: uuid.UUID) -> None:
        if not actor.is_superadmin and actor.tenant_id != tenant_id:
            raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")

    @staticmethod
    def _valid_name(name: str) -> str:
        cleaned = name.strip()
        if not cleaned or len(cleaned) > NAME_MAX:
            raise Invalid(
                "Validation failed: name",
                details=[{"field": "name", "message": f"must be 1 to {NAME_MAX} characters"}],
            )
        return cleaned

    @staticmethod
    def _valid_status(status: str) -> None:
        if status not in TENANT_STATUSES:
            raise Invalid(
                "Validation failed: status",
                details=[{"field": "status", "message": "one of: " + ", ".join(TENANT_STATUSES)}],
            )
