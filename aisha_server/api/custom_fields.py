"""Routes of the custom-fields resource (filled in by its own change)."""

from __future__ import annotations

from aisha_server.api.routing import Routes

routes = Routes()
