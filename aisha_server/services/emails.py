"""One rule for e-mail addresses everywhere (users, invitations, records, custom fields).

Syntax is validated and the address normalised by email-validator, without DNS (the server
may run offline).  The reserved `.test` domain (RFC 2606) is accepted, because demo, staging
and training tenants use it; the other special-use names (`localhost`, `.local`, `.invalid`,
`.example`, ...) are refused.  The stored form is lower-cased, so equality finds duplicates
and prefix search can use an index.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

__all__ = ["EmailNotValidError", "normalised_email"]


def normalised_email(value: str) -> str:
    """The stored form of `value`; raises EmailNotValidError saying what is wrong."""
    checked = validate_email(value.strip(), check_deliverability=False, test_environment=True)
    return str(checked.normalized).lower()
