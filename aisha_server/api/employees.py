"""Routes of /api/employees (filled in by its own change)."""

from __future__ import annotations

from aisha_server.api.routing import Routes

routes = Routes()
