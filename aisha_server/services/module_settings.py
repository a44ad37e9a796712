"""Per-tenant module enablement and settings (guide 4.4 "Module Settings").

The modules and their defaults are `tenants.DEFAULT_MODULES`; a tenant without a row for a
module gets its default.  Settings of the known modules are checked (realtime_voice,
opportunities, workflows); other keys are kept as given.  `is_enabled`/`require_enabled`/
`settings_for` are what the record endpoints and workers ask, so they are answered from a
short per-tenant cache, dropped on every change made through this instance.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server.auth.authorize import require_allowed
from aisha_server.auth.principal import Principal
from aisha_server.db.changelog import ChangeContext
from aisha_server.db.models import ModuleSetting
from aisha_server.db.uow import Database
from aisha_server.errors import TENANT_ACCESS_DENIED, Invalid, NotFound, PermissionDenied
from aisha_server.services.tenants import (
    DEFAULT_MODULES,
    MODULES_BY_NAME,
    ModuleChange,
    apply_module_changes,
)

CACHE_TTL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ModuleState:
    module_name: str
    is_enabled: bool
    settings: dict[str, Any]

    def view(self) -> dict[str, Any]:
        return {
            "module_name": self.module_name,
            "is_enabled": self.is_enabled,
            "settings": dict(self.settings),
        }


# -- settings checks (a value of None means "remove the key", as in the tenant PUT) -----------


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


MAX_STAGES = 50
STAGE_LENGTH = 50  # opportunities.stage holds at most this many characters


def _stages(value: Any) -> str | None:
    """A pipeline every opportunity can use: names an opportunity's stage can hold, told
    apart whatever their case (an operator cannot see "Prospect" and "prospect" apart)."""
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of stage names"
    if len(value) > MAX_STAGES:
        return f"at most {MAX_STAGES} stages"
    if not all(isinstance(s, str) and s.strip() for s in value):
        return "every stage must be a non-empty string"
    names = [s.strip() for s in value]
    long = [n for n in names if len(n) > STAGE_LENGTH]
    if long:
        return f"a stage has at most {STAGE_LENGTH} characters: {long[0][:20]!r}... is longer"
    if any("\x00" in n for n in names):
        return "stages must not contain NUL characters"
    if len({n.casefold() for n in names}) != len(names):
        return "stages must be unique (whatever their case)"
    return None


def _count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return "must be a whole number >= 0"
    return None


SETTING_CHECKS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "realtime_voice": {"ptt_enabled": _bool, "auto_play_responses": _bool},
    "opportunities": {"stages": _stages},
    "workflows": {"max_workflows": _count},
}


def validated_module_settings(module_name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    checks = SETTING_CHECKS.get(module_name, {})
    details = []
    for key, value in settings.items():
        check = checks.get(key)
        problem = check(value) if check is not None and value is not None else None
        if problem is not None:
            details.append({"field": f"settings.{key}", "message": problem, "type": "value_error"})
    if details:
        fields = ", ".join(d["field"] for d in details)
        raise Invalid(f"Validation failed: {fields}", details=details)
    out = dict(settings)
    if isinstance(out.get("stages"), list):
        out["stages"] = [s.strip() for s in out["stages"]]
    return out


def _known(module_name: str) -> None:
    if module_name not in MODULES_BY_NAME:
        raise NotFound(f"Module not found: {module_name}", code="module_not_found")


def _states(session: Session, tenant_id: uuid.UUID) -> dict[str, ModuleState]:
    """Every module of the tenant: stored rows over the defaults (defaults' keys filled in)."""
    rows = {
        r.module_name: r
        for r in session.scalars(
            select(ModuleSetting).where(
                ModuleSetting.tenant_id == tenant_id, ModuleSetting.deleted_at.is_(None)
            )
        )
    }
    states: dict[str, ModuleState] = {}
    for default in DEFAULT_MODULES:
        row = rows.pop(default.name, None)
        states[default.name] = ModuleState(
            default.name,
            row.is_enabled if row is not None else default.is_enabled,
            {**(default.settings or {}), **((row.settings if row is not None else None) or {})},
        )
    for name in sorted(rows):  # rows of modules we have no default for (raw SQL): as stored
        states[name] = ModuleState(name, rows[name].is_enabled, dict(rows[name].settings or {}))
    return states


class ModuleSettingsService:
    def __init__(self, db: Database, *, ttl: float = CACHE_TTL_SECONDS) -> None:
        self._db = db
        self._ttl = ttl
        self._cache: dict[uuid.UUID, tuple[float, dict[str, ModuleState]]] = {}

    # -- for other code: cached ----------------------------------------------------------------
    async def _cached(self, tenant_id: uuid.UUID) -> dict[str, ModuleState]:
        now = time.monotonic()
        hit = self._cache.get(tenant_id)
        if hit is not None and now - hit[0] <= self._ttl:
            return hit[1]
        states = await self._db.run(
            lambda s: _states(s, tenant_id), tenant_id=tenant_id, write=False, quick=True
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[tenant_id] = (now, states)
        return states

    async def _state(self, tenant_id: uuid.UUID, module: str) -> ModuleState:
        state = (await self._cached(tenant_id)).get(module)
        if state is None:
            raise NotFound(f"Module not found: {module}", code="module_not_found")
        return state

    async def is_enabled(self, tenant_id: uuid.UUID, module: str) -> bool:
        return (await self._state(tenant_id, module)).is_enabled

    async def require_enabled(self, tenant_id: uuid.UUID, module: str) -> None:
        if not await self.is_enabled(tenant_id, module):
            raise PermissionDenied(f"Module disabled: {module}", code="module_disabled")

    async def settings_for(self, tenant_id: uuid.UUID, module: str) -> dict[str, Any]:
        """The module's effective settings (defaults filled in), e.g. opportunity stages."""
        return dict((await self._state(tenant_id, module)).settings)

    def forget(self, tenant_id: uuid.UUID | None = None) -> None:
        """Drop cached answers for one tenant (or all) after a change."""
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)

    # -- the API ----------------------------------------------------------------------------
    async def list_modules(self, actor: Principal, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        _own_tenant(actor, tenant_id)
        require_allowed(actor, "modules", "read")
        states = await self._db.run(
            lambda s: _states(s, tenant_id), tenant_id=tenant_id, write=False
        )
        return [state.view() for state in states.values()]

    async def get(self, actor: Principal, tenant_id: uuid.UUID, module: str) -> dict[str, Any]:
        _own_tenant(actor, tenant_id)
        require_allowed(actor, "modules", "read")
        _known(module)
        states = await self._db.run(
            lambda s: _states(s, tenant_id), tenant_id=tenant_id, write=False
        )
        return states[module].view()

    async def update(
        self,
        actor: Principal,
        tenant_id: uuid.UUID,
        module: str,
        *,
        is_enabled: bool | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Toggle a module and merge its settings (a key set to null is removed)."""
        _own_tenant(actor, tenant_id)
        require_allowed(
            actor, "modules", "update", message="Only administrators may change module settings"
        )
        _known(module)
        if is_enabled is None and settings is None:
            raise Invalid("Nothing to update: give is_enabled and/or settings", code="no_changes")
        clean = validated_module_settings(module, settings) if settings is not None else None
        change = ModuleChange(is_enabled=is_enabled, settings=clean)

        def write(session: Session) -> dict[str, Any]:
            apply_module_changes(session, tenant_id, {module: change})
            session.flush()
            return _states(session, tenant_id)[module].view()

        try:
            return await self._db.run(
                write, tenant_id=tenant_id, actor=ChangeContext(actor.user_id)
            )
        finally:
            self.forget(tenant_id)


def _own_tenant(actor: Principal, tenant_id: uuid.UUID) -> None:
    if not actor.is_superadmin and actor.tenant_id != tenant_id:
        raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")
