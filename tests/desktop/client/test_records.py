"""Record helpers against a real server: CRUD on contacts, validation details, duplicates,
version conflicts, not found."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from aisha_desktop.client import (
    ApiClient,
    Conflict,
    NotFound,
    PossibleDuplicates,
    ValidationError,
    VersionConflict,
)
from tests.desktop.client.conftest import LiveServer
from tests.factories import SeededUser


@pytest.fixture
async def signed_in(live: LiveServer, admin: SeededUser) -> AsyncIterator[ApiClient]:
    async with ApiClient(live.url, timeout=10) as api:
        await api.login(admin.email, admin.password)
        yield api


async def test_contact_crud(signed_in: ApiClient) -> None:
    api = signed_in
    created = await api.create_record(
        "contacts",
        {"first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com"},
    )
    record_id = created["id"]
    assert created["email"] == "ada@example.com"  # normalised by the server
    version = created["version"]
    assert isinstance(version, int)

    fetched = await api.get_record("contacts", uuid.UUID(record_id))
    assert fetched["last_name"] == "Lovelace"

    page = await api.list_records("contacts", q="lovel", limit=10, include_total=True)
    assert [r["id"] for r in page.items] == [record_id]
    assert page.total == 1 and page.limit == 10
    assert page.next_cursor is None
    assert (await api.list_records("contacts", q="nobody-like-this")).items == []

    updated = await api.update_record("contacts", record_id, {"title": "Analyst"}, version=version)
    assert updated["title"] == "Analyst"
    assert updated["version"] == version + 1

    deleted = await api.delete_record("contacts", record_id)
    assert deleted["id"] == record_id
    with pytest.raises(NotFound) as gone:
        await api.get_record("contacts", record_id)
    assert gone.value.status == 404
    restored = await api.restore_record("contacts", record_id)
    assert restored["deleted_at"] is None
    assert (await api.get_record("contacts", record_id))["title"] == "Analyst"


async def _all_pages(api: ApiClient, entity: str, **params: object) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    page = await api.list_records(entity, **params)
    while True:
        seen += page.items
        if page.next_cursor is None:
            return seen
        page = await api.list_records(entity, cursor=page.next_cursor, **params)


async def test_pages_follow_the_cursor(signed_in: ApiClient) -> None:
    names = ["Delta", "alpha", "Charlie", "bravo", "Echo"]
    for name in names:
        await signed_in.create_record("accounts", {"name": name})
    seen = await _all_pages(signed_in, "accounts", limit=2, sort="name")
    assert [r["name"] for r in seen] == sorted(names)  # each exactly once, in order


async def test_pages_follow_the_cursor_on_the_default_sort(signed_in: ApiClient) -> None:
    for n in range(5):
        await signed_in.create_record("contacts", {"first_name": f"P{n}"})
    seen = await _all_pages(signed_in, "contacts", limit=2)
    # newest first (-updated_at), each exactly once
    assert [r["first_name"] for r in seen] == ["P4", "P3", "P2", "P1", "P0"]


async def test_validation_error_names_the_fields(signed_in: ApiClient) -> None:
    with pytest.raises(ValidationError) as refused:
        await signed_in.create_record("contacts", {"first_name": "x" * 101, "shoe_size": 44})
    error = refused.value
    assert error.status == 422
    assert error.code == "validation_error"
    assert set(error.field_errors) == {"first_name", "shoe_size"}
    assert "first_name" in error.message

    with pytest.raises(ValidationError) as bad_query:
        await signed_in.list_records("contacts", limit=0)
    assert "limit" in bad_query.value.field_errors

    with pytest.raises(ValidationError) as unknown_param:
        await signed_in.list_records("contacts", colour="red")
    assert "colour" in unknown_param.value.field_errors


async def test_money_and_dates_travel_as_json(signed_in: ApiClient) -> None:
    created = await signed_in.create_record(
        "opportunities", {"name": "Deal", "amount": Decimal("12000.50"), "stage": "prospect"}
    )
    assert Decimal(str(created["amount"])) == Decimal("12000.50")


async def test_possible_duplicate_is_a_409_with_the_matches(signed_in: ApiClient) -> None:
    first = await signed_in.create_record(
        "contacts", {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"}
    )
    with pytest.raises(PossibleDuplicates) as duplicate:
        await signed_in.create_record(
            "contacts", {"first_name": "G.", "last_name": "Hopper", "email": "GRACE@example.com"}
        )
    error = duplicate.value
    assert isinstance(error, Conflict) and error.status == 409
    assert error.code == "possible_duplicates"
    assert [d["id"] for d in error.duplicates] == [first["id"]]
    assert "confirm_duplicate" in error.message

    second = await signed_in.create_record(
        "contacts",
        {"first_name": "G.", "last_name": "Hopper", "email": "grace@example.com"},
        confirm_duplicate=True,
    )
    assert second["id"] != first["id"]


async def test_version_conflict(signed_in: ApiClient) -> None:
    created = await signed_in.create_record("contacts", {"first_name": "Alan"})
    base = created["version"]
    await signed_in.update_record("contacts", created["id"], {"title": "First"}, version=base)
    with pytest.raises(VersionConflict) as stale:
        await signed_in.update_record("contacts", created["id"], {"title": "Second"}, version=base)
    assert stale.value.current_version == base + 1
    assert stale.value.status == 409
    # without a version the edit applies (last writer wins)
    applied = await signed_in.update_record("contacts", created["id"], {"title": "Third"})
    assert applied["title"] == "Third" and applied["version"] == base + 2


async def test_unknown_record_and_bad_names(signed_in: ApiClient) -> None:
    with pytest.raises(NotFound):
        await signed_in.get_record("contacts", uuid.uuid4())
    with pytest.raises(NotFound):
        await signed_in.list_records("spaceships")
    # refused before anything is sent: they would change the request's path
    with pytest.raises(ValueError, match="entity"):
        await signed_in.list_records("../auth/me")
    with pytest.raises(ValueError, match="record id"):
        await signed_in.get_record("contacts", "1/../../me")
    with pytest.raises(ValueError, match="path"):
        await signed_in.request("GET", "http://elsewhere.example/api/auth/me")


async def test_generic_request(signed_in: ApiClient, admin: SeededUser) -> None:
    me = await signed_in.request("GET", "/api/auth/me")
    assert me["user"]["email"] == admin.email
    with pytest.raises(NotFound) as missing:
        await signed_in.request("GET", "/api/no-such-thing")
    assert "/api/no-such-thing" in missing.value.message
