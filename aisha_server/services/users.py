"""Users: CRUD within data scope, invitations, bulk import, presence."""

from __future__ import annotations

from aisha_server.auth.gate import AuthGate
from aisha_server.auth.passwords import PasswordHashing
from aisha_server.config import Settings
from aisha_server.db.uow import Database
from aisha_server.mail import Mailer


class UserService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        passwords: PasswordHashing,
        gate: AuthGate,
        mailer: Mailer,
    ) -> None:
        self._settings = settings
        self._db = db
        self._passwords = passwords
        self._gate = gate
        self._mailer = mailer
