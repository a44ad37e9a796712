"""Signing outgoing webhooks (guide 13.6).

The body is serialised once, in the form JavaScript's `JSON.stringify` gives the parsed
payload back (compact separators, key order kept with integer-like keys first, numbers as
JavaScript prints them, non-ASCII characters as UTF-8).  So the guide's receiver snippet,
which re-serialises the parsed payload with `JSON.stringify` before computing the HMAC,
accepts the signature exactly as a receiver that hashes the raw body does.

Headers of every request:

* `X-AISHA-SIGNATURE`: lowercase hex HMAC-SHA256 of the body bytes (the guide's contract);
* `X-AISHA-TIMESTAMP`: Unix seconds when the request was sent;
* `X-AISHA-SIGNATURE-V2`: lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"`, so a receiver
  can reject a replayed request (timestamp too old) that still carries a valid body signature;
* `X-AISHA-EVENT-ID`: the event id (also in the body), the key receivers deduplicate on.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from aisha_server import __version__

SIGNATURE_HEADER: Final = "X-AISHA-SIGNATURE"
TIMESTAMP_HEADER: Final = "X-AISHA-TIMESTAMP"
SIGNATURE_V2_HEADER: Final = "X-AISHA-SIGNATURE-V2"
EVENT_ID_HEADER: Final = "X-AISHA-EVENT-ID"
USER_AGENT: Final = f"AiSHA-CARE/{__version__}"

# JavaScript numbers are doubles: integers beyond this change when a receiver parses them
MAX_SAFE_INTEGER: Final = 2**53 - 1
# an array index in JavaScript (objects list these keys first, ascending)
_INDEX_KEY = re.compile(r"0|[1-9][0-9]*")
_MAX_INDEX = 2**32 - 2


def _js_number(value: float) -> str:
    """`Number.prototype.toString()` of a finite double (ECMA-262 Number::toString)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as JavaScript's algorithm does
    digits_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits_tuple))
    assert isinstance(exponent, int)
    k = len(digits)
    n = k + exponent  # value = 0.digits x 10^n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def _iso(value: datetime) -> str:
    """`Date.prototype.toISOString()`: UTC, milliseconds, `Z`."""
    if value.tzinfo is None:
        raise ValueError("naive datetime in a webhook payload")
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _encode(value: Any, out: list[str], path: str) -> None:
    if value is None or value is True or value is False:
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, enum.Enum):
        _encode(value.value, out, path)
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer {value} is beyond what JSON receivers keep exact")
        out.append(str(value))
    elif isinstance(value, float | Decimal):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{path}: {value} has no JSON form")
        out.append(_js_number(number))
    elif isinstance(value, datetime):
        out.append(json.dumps(_iso(value)))
    elif isinstance(value, date):
        out.append(json.dumps(value.isoformat()))
    elif isinstance(value, uuid.UUID):
        out.append(f'"{value}"')
    elif isinstance(value, Mapping):
        keys = [str(k) if isinstance(k, uuid.UUID | enum.Enum) else k for k in value]
        if not all(isinstance(k, str) for k in keys):
            raise ValueError(f"{path}: object keys must be strings")
        pairs = list(zip(keys, value.values(), strict=True))
        # JavaScript lists integer-like keys first, ascending; then the rest in order
        index = sorted(
            (p for p in pairs if _INDEX_KEY.fullmatch(p[0]) and int(p[0]) <= _MAX_INDEX),
            key=lambda p: int(p[0]),
        )
        named = [p for p in pairs if not (_INDEX_KEY.fullmatch(p[0]) and int(p[0]) <= _MAX_INDEX)]
        out.append("{")
        for i, (key, item) in enumerate(index + named):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out, f"{path}.{key}")
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, f"{path}[{i}]")
        out.append("]")
    else:
        raise ValueError(f"{path}: {type(value).__name__} cannot be sent in a webhook payload")


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The body bytes: what `JSON.stringify(JSON.parse(body))` gives back unchanged.

    Raises ValueError for values JSON cannot carry faithfully (NaN, integers beyond 2^53,
    naive datetimes, unknown types).  Lone surrogates in strings become U+FFFD.
    """
    out: list[str] = []
    _encode(payload, out, "payload")
    return "".join(out).encode("utf-8", "replace")


def body_signature(secret: str, body: bytes) -> str:
    """`X-AISHA-SIGNATURE`: lowercase hex HMAC-SHA256 of the exact body bytes."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def timestamped_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`X-AISHA-SIGNATURE-V2`: lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"`."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, *, event_id: str, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event_id,
        SIGNATURE_HEADER: body_signature(secret, body),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_V2_HEADER: timestamped_signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance: float = 300.0,
) -> bool:
    """What a receiver does (used by the tests; a Python receiver may copy it): both
    signatures must match and the timestamp must be within `tolerance` seconds of `now`."""
    try:
        timestamp = int(headers.get(TIMESTAMP_HEADER, ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    ok_body = hmac.compare_digest(headers.get(SIGNATURE_HEADER, ""), body_signature(secret, body))
    ok_v2 = hmac.compare_digest(
        headers.get(SIGNATURE_V2_HEADER, ""), timestamped_signature(secret, timestamp, body)
    )
    return ok_body and ok_v2
