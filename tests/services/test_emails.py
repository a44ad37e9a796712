"""One e-mail rule for users, records and custom fields: valid syntax, normalised, lower
case; `.test` accepted, other special-use names refused."""

from __future__ import annotations

import pytest

from aisha_server.errors import Invalid
from aisha_server.services.custom_fields import _Bad, _email
from aisha_server.services.emails import EmailNotValidError, normalised_email
from aisha_server.services.records import normalise_email
from aisha_server.services.users import normalize_email


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ann.Smith@Example.COM", "ann.smith@example.com"),
        ("  ops@acme.test ", "ops@acme.test"),
        ("émile@exämple.fr", "émile@exämple.fr"),
    ],
)
def test_every_path_stores_the_same_form(raw: str, stored: str) -> None:
    assert normalised_email(raw) == stored
    assert normalize_email(raw) == stored  # users
    assert normalise_email(raw) == stored  # records
    assert _email(raw) == stored  # custom fields


@pytest.mark.parametrize("raw", ["x@localhost", "x@host.local", "x@a.invalid", "no-at-sign", "a@b"])
def test_every_path_refuses_the_same_addresses(raw: str) -> None:
    with pytest.raises(EmailNotValidError):
        normalised_email(raw)
    with pytest.raises(Invalid):
        normalize_email(raw)
    with pytest.raises(Invalid):
        normalise_email(raw)
    with pytest.raises(_Bad):
        _email(raw)
