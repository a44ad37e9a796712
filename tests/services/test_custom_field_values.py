"""Custom field values (guide 4.4, 6.5): `validate_values` and `filter_value`, pure functions
that every record write path and list filter uses.  No database needed."""

from __future__ import annotations

import math
from typing import Any

import pytest

from aisha_server.errors import Invalid
from aisha_server.services.custom_fields import (
    FieldDefinition,
    filter_value,
    normalise_entity,
    validate_values,
)

SOURCES = ("Website", "Referral", "Event", "Other")


def field(name: str, kind: str, **kwargs: Any) -> FieldDefinition:
    return FieldDefinition(field_name=name, field_type=kind, **kwargs)


def one(kind: str, value: Any, **kwargs: Any) -> Any:
    """The stored form of one value of a field of `kind`."""
    return validate_values([field("f", kind, **kwargs)], {"f": value}, partial=False)["f"]


def problems(
    definitions: list[FieldDefinition], values: dict[str, Any], **kwargs: Any
) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        validate_values(definitions, values, **{"partial": False, **kwargs})
    assert caught.value.status == 422
    return {d["field"]: d["message"] for d in caught.value.details}


def refused(kind: str, value: Any, **kwargs: Any) -> str:
    found = problems([field("f", kind, **kwargs)], {"f": value})
    assert list(found) == ["custom_fields.f"]
    return found["custom_fields.f"]


# -- one type at a time ----------------------------------------------------------------------


def test_text() -> None:
    assert one("text", "hello") == "hello"
    assert one("text", "x" * 10_000) == "x" * 10_000
    assert "10000" in refused("text", "x" * 10_001)
    for bad in (5, True, ["a"], {"a": 1}):
        assert refused("text", bad) == "must be a string"


def test_number() -> None:
    assert one("number", 42) == 42
    assert one("number", -3.5) == -3.5
    assert one("number", 0) == 0
    for bad in (True, False, "42", [1], {"n": 1}):
        assert refused("number", bad) == "must be a number"
    for bad in (math.inf, -math.inf, math.nan):
        assert "finite" in refused("number", bad)


def test_currency_is_stored_as_an_exact_two_place_string() -> None:
    assert one("currency", 1234.5) == "1234.50"
    assert one("currency", 1234) == "1234.00"
    assert one("currency", "1234.5") == "1234.50"
    assert one("currency", " 99.99 ") == "99.99"
    assert one("currency", 0.1) == "0.10"  # the float's shortest form, not 0.1000000000000000055
    assert one("currency", "-15.25") == "-15.25"
    assert one("currency", "7.500") == "7.50"  # trailing zeros are not extra precision
    for bad in ("1.005", 1.005, 0.001):
        assert "2 decimal places" in refused("currency", bad)
    for bad in ("12abc", "1,234.50", "$5", "1e3", "", True, [1], "nan", "inf"):
        message = problems([field("f", "currency", is_required=True)], {"f": bad})
        assert "custom_fields.f" in message
    assert "too large" in refused("currency", "1000000000000000")
    assert "finite" in refused("currency", math.inf)


def test_date() -> None:
    assert one("date", "2025-02-28") == "2025-02-28"
    assert "calendar" in refused("date", "2025-02-30")
    for bad in ("28/02/2025", "2025-2-28", "20250228", "2025-02-28T10:00:00Z", 20250228, True):
        assert "YYYY-MM-DD" in refused("date", bad)


def test_datetime_is_stored_in_utc_and_needs_a_zone() -> None:
    assert one("datetime", "2025-01-31T09:30:00Z") == "2025-01-31T09:30:00+00:00"
    assert one("datetime", "2025-01-31T11:30:00+02:00") == "2025-01-31T09:30:00+00:00"
    assert one("datetime", "2025-01-31T00:15:00-05:00") == "2025-01-31T05:15:00+00:00"
    assert "time zone" in refused("datetime", "2025-01-31T09:30:00")
    for bad in ("2025-01-31", "yesterday", "2025-13-01T00:00:00Z", 1738315800, True):
        assert "ISO 8601" in refused("datetime", bad)


def test_select_takes_one_option_in_its_own_spelling() -> None:
    assert one("select", "Website", options=SOURCES) == "Website"
    assert one("select", "website", options=SOURCES) == "Website"
    for bad in ("Billboard", 1, ["Website"], True):
        assert "one of: Website, Referral" in refused("select", bad, options=SOURCES)


def test_multiselect_takes_a_list_of_distinct_options() -> None:
    assert one("multiselect", ["Event", "website"], options=SOURCES) == ["Event", "Website"]
    assert "repeat" in refused("multiselect", ["Event", "event"], options=SOURCES)
    assert "one of" in refused("multiselect", ["Event", "Billboard"], options=SOURCES)
    assert "list" in refused("multiselect", "Event", options=SOURCES)


def test_boolean_is_true_or_false_only() -> None:
    assert one("boolean", True) is True
    assert one("boolean", False) is False
    for bad in ("yes", "true", 1, 0, "false"):
        assert refused("boolean", bad) == "must be true or false"


def test_email_is_normalised_to_lower_case() -> None:
    assert one("email", " Jane.Doe@Example.COM ") == "jane.doe@example.com"
    for bad in ("jane", "jane@", "@example.com", "jane doe@example.com", 5):
        assert "email" in refused("email", bad)


def test_phone_is_stored_in_e164() -> None:
    assert one("phone", "(201) 555-0123") == "+12015550123"
    assert one("phone", "+44 20 7946 0958") == "+442079460958"
    uk = validate_values(
        [field("p", "phone")], {"p": "020 7946 0958"}, partial=False, default_region="GB"
    )
    assert uk == {"p": "+442079460958"}
    for bad in ("555-0123", "call me", "+1 999", 2015550123):
        assert "phone" in refused("phone", bad)


def test_url_needs_http_or_https_and_a_host() -> None:
    assert one("url", "https://example.com/a?b=c") == "https://example.com/a?b=c"
    assert one("url", " http://localhost:8080 ") == "http://localhost:8080"
    for bad in (
        "ftp://example.com",
        "example.com",
        "https://",
        "javascript:alert(1)",
        "https://exa mple.com",
        "http://host:99999",
        5,
    ):
        assert "URL" in refused("url", bad)


# -- the whole write -------------------------------------------------------------------------


CONTACT = [
    field("referral_source", "select", options=SOURCES, is_required=True),
    field("score", "number"),
    field("nickname", "text"),
    field("old_code", "text", is_archived=True),
]


def test_create_stores_normalised_values_and_needs_required_fields() -> None:
    stored = validate_values(
        CONTACT, {"referral_source": "event", "score": 7, "nickname": None}, partial=False
    )
    assert stored == {"referral_source": "Event", "score": 7}
    assert problems(CONTACT, {"score": 1}) == {"custom_fields.referral_source": "is required"}
    for empty in (None, "", "   "):
        found = problems(CONTACT, {"referral_source": empty})
        assert found == {"custom_fields.referral_source": "is required and cannot be empty"}


def test_every_bad_field_is_reported_at_once() -> None:
    found = problems(
        CONTACT,
        {"score": "high", "nickname": 3, "shoe_size": 44, "old_code": "X"},
    )
    assert found == {
        "custom_fields.referral_source": "is required",
        "custom_fields.score": "must be a number",
        "custom_fields.nickname": "must be a string",
        "custom_fields.shoe_size": "is not a custom field of this record type",
        "custom_fields.old_code": "is archived and cannot be changed",
    }
    with pytest.raises(Invalid) as caught:
        validate_values(CONTACT, {"score": "high"}, partial=False)
    assert caught.value.message.startswith("Validation failed: custom_fields.")


def test_partial_update_merges_and_null_clears_optional_fields() -> None:
    existing = {"referral_source": "Website", "score": 3, "nickname": "JD", "old_code": "A1"}
    stored = validate_values(
        CONTACT, {"score": 4.5, "nickname": None}, partial=True, existing=existing
    )
    assert stored == {"referral_source": "Website", "score": 4.5, "old_code": "A1"}
    assert existing["nickname"] == "JD"  # the caller's mapping is not modified
    # a partial update need not repeat required fields ...
    assert validate_values(CONTACT, {}, partial=True, existing=existing) == existing
    # ... but may not clear them
    found = problems(CONTACT, {"referral_source": None}, partial=True, existing=existing)
    assert found == {"custom_fields.referral_source": "is required and cannot be empty"}


def test_archived_values_are_kept_but_cannot_change() -> None:
    existing = {"referral_source": "Website", "old_code": "A1", "from_an_import": "kept"}
    # round-tripping the stored value is fine; a full write keeps archived/undefined values
    stored = validate_values(
        CONTACT,
        {"referral_source": "Referral", "old_code": "A1"},
        partial=False,
        existing=existing,
    )
    assert stored == {"referral_source": "Referral", "old_code": "A1", "from_an_import": "kept"}
    stored = validate_values(
        CONTACT, {"referral_source": "Referral"}, partial=False, existing=existing
    )
    assert stored["old_code"] == "A1"
    for change in ("B2", None):
        found = problems(CONTACT, {"old_code": change}, partial=True, existing=existing)
        assert found == {"custom_fields.old_code": "is archived and cannot be changed"}
    # an archived required field is no longer demanded
    archived_required = [field("legacy", "text", is_required=True, is_archived=True)]
    assert validate_values(archived_required, {}, partial=False) == {}


def test_a_full_write_replaces_active_fields() -> None:
    existing = {"referral_source": "Website", "score": 3, "nickname": "JD"}
    stored = validate_values(
        CONTACT, {"referral_source": "Event"}, partial=False, existing=existing
    )
    assert stored == {"referral_source": "Event"}


def test_values_must_be_an_object() -> None:
    with pytest.raises(Invalid) as caught:
        validate_values(CONTACT, ["referral_source"], partial=True)  # type: ignore[arg-type]
    assert caught.value.details == [{"field": "custom_fields", "message": "must be an object"}]


def test_no_definitions_means_no_custom_fields() -> None:
    assert validate_values([], {}, partial=False) == {}
    assert problems([], {"anything": 1}) == {
        "custom_fields.anything": "is not a custom field of this record type"
    }


# -- list filters ----------------------------------------------------------------------------


def test_filter_values_parse_from_text_with_the_same_rules() -> None:
    assert filter_value(field("s", "select", options=SOURCES), "website") == "Website"
    assert filter_value(field("m", "multiselect", options=SOURCES), "Event") == "Event"
    assert filter_value(field("n", "number"), "42") == 42
    assert filter_value(field("n", "number"), "-2.5") == -2.5
    assert filter_value(field("c", "currency"), "10.5") == "10.50"
    assert filter_value(field("b", "boolean"), "TRUE") is True
    assert filter_value(field("b", "boolean"), "false") is False
    assert filter_value(field("d", "date"), "2025-03-01") == "2025-03-01"
    assert filter_value(field("t", "datetime"), "2025-03-01T10:00:00+01:00") == (
        "2025-03-01T09:00:00+00:00"
    )
    assert filter_value(field("e", "email"), "A@B.example") == "a@b.example"
    assert filter_value(field("p", "phone"), "201-555-0123") == "+12015550123"
    assert filter_value(field("x", "text"), "anything at all") == "anything at all"


@pytest.mark.parametrize(
    ("definition", "raw"),
    [
        (field("s", "select", options=SOURCES), "Billboard"),
        (field("n", "number"), "forty"),
        (field("n", "number"), "nan"),
        (field("c", "currency"), "1.234"),
        (field("b", "boolean"), "yes"),
        (field("d", "date"), "03/01/2025"),
        (field("t", "datetime"), "2025-03-01T10:00:00"),
        (field("e", "email"), "nobody"),
        (field("p", "phone"), "12"),
        (field("u", "url"), "ftp://x"),
    ],
)
def test_bad_filter_values_are_422_naming_the_parameter(
    definition: FieldDefinition, raw: str
) -> None:
    with pytest.raises(Invalid) as caught:
        filter_value(definition, raw)
    assert caught.value.message == f"Invalid query parameters: cf.{definition.field_name}"
    assert caught.value.details[0]["field"] == f"cf.{definition.field_name}"


def test_entity_names_are_singular_and_plurals_are_accepted() -> None:
    assert normalise_entity("contacts") == "contact"
    assert normalise_entity("Opportunities") == "opportunity"
    assert normalise_entity("activity") == "activity"
    assert normalise_entity("widgets") is None
