"""Password hashing with argon2id, off the event loop.

Parameters are OWASP's argon2id recommendation (m=19 MiB, t=2, p=1): a verify costs tens of
milliseconds on the project's 2-core machines, which keeps a login under the 150 ms budget
while staying memory-hard.  Hashes made with other parameters are upgraded on next login.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from aisha_server.errors import Invalid

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3:
        return "must mix at least three of: lower case, upper case, digits, symbols"
    return None


def check_new_password(password: str, *, field: str = "password") -> None:
    problem = password_problem(password)
    if problem is not None:
        raise Invalid(f"{field} {problem}", details=[{"field": field, "message": problem}])


class PasswordHashing:
    def __init__(self, *, workers: int = 2) -> None:
        self._hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="aisha-argon2")
        # verified against when the email is unknown, so timing does not reveal accounts
        self._dummy = self._hasher.hash("not-a-real-password-Aa1!")

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hasher.hash, password
        )

    def _verify(self, hashed: str | None, password: str) -> tuple[bool, bool]:
        try:
            self._hasher.verify(hashed or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
        if hashed is None:
            return False, False
        return True, self._hasher.check_needs_rehash(hashed)

    async def verify(self, hashed: str | None, password: str) -> tuple[bool, bool]:
        """(matches, needs_rehash).  A None hash always fails, in the same time."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._verify, hashed, password
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
