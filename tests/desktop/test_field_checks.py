"""The record form's checks of web addresses agree with the server's: a check that refuses
what the server takes keeps an operator from saving a valid record, one that takes what the
server refuses only moves the error to the save."""

from __future__ import annotations

import pytest

from aisha_desktop.models.fields import FIELDS, FieldSpec, check_value
from aisha_server.api.records import _web_address
from aisha_server.services.custom_fields import _url

ADDRESSES = [
    "acme.example",
    "acme.example/en",
    "acme.example:8080/shop?x=1",
    "www.acme.example",
    "localhost:3000",
    "http://acme.example",
    "https://acme.example/path",
    "HTTPS://ACME.EXAMPLE",
    "http://localhost:8080",
    "http://intranet",
    "ftp://acme.example",
    "javascript:alert(1)",
    "data:text/html,hi",
    "not a site",
    "acme",
    "http://",
    "https://acme.example:99999",
    "acme.example:port",
    "mailto:ann@acme.example",
]


def _server_takes(check: object, value: str) -> bool:
    try:
        check(value)  # type: ignore[operator]
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("value", ADDRESSES)
def test_website_check_matches_the_server(value: str) -> None:
    website = next(f for f in FIELDS["accounts"] if f.name == "website")
    desktop_ok = check_value(website, value) is None
    assert desktop_ok == _server_takes(_web_address, value), value


@pytest.mark.parametrize("value", ADDRESSES)
def test_custom_url_check_matches_the_server(value: str) -> None:
    field = FieldSpec("cf_site", "Site", "url", custom=True)
    desktop_ok = check_value(field, value) is None
    assert desktop_ok == _server_takes(_url, value), value


def test_messages_say_what_is_expected() -> None:
    website = next(f for f in FIELDS["accounts"] if f.name == "website")
    assert check_value(website, "not a site") == (
        "Website: not a web address (acme.example or https://acme.example)"
    )
    custom = FieldSpec("cf_site", "Site", "url", custom=True)
    assert check_value(custom, "acme.example") == "Site: not a web address (http:// or https://)"
