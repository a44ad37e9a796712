"""Login, logout, token refresh with rotation, password reset."""

from __future__ import annotations

from aisha_server.auth.gate import AuthGate
from aisha_server.auth.passwords import PasswordHashing
from aisha_server.auth.tokens import TokenService
from aisha_server.config import Settings
from aisha_server.db.uow import Database
from aisha_server.mail import Mailer
from aisha_server.services.system_log import SystemLogWriter


class AuthService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        tokens: TokenService,
        passwords: PasswordHashing,
        gate: AuthGate,
        mailer: Mailer,
        system_log: SystemLogWriter,
    ) -> None:
        self._settings = settings
        self._db = db
        self._tokens = tokens
        self._passwords = passwords
        self._gate = gate
        self._mailer = mailer
        self._system_log = system_log
