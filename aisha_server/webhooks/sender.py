"""One signed POST of a trigger body and what its outcome means for retrying.

Retried: timeouts, network errors, 5xx and 429 (the receiver may recover).  Not retried:
every other answer outside 2xx (a 4xx will not change by asking again; redirects are not
followed, a signed POST is not re-sent to another address).
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import aiohttp

from aisha_server.db.base import utcnow
from aisha_server.webhooks.delivery import Attempt
from aisha_server.webhooks.signing import signed_headers

MAX_ERROR_CHARS = 500


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def classify(status: int) -> tuple[bool, bool]:
    """(delivered, retryable) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    return False, status == 429 or status >= 500


async def post_signed(
    client: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    secret: str,
    event_id: str,
    timeout_s: float,
) -> Attempt:
    headers = signed_headers(secret, body, event_id=event_id, timestamp=int(time.time()))
    try:
        async with client.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            # read (a little of) the answer so the connection can be reused
            text = (await response.content.read(MAX_ERROR_CHARS)).decode("utf-8", "replace")
            delivered, retryable = classify(response.status)
            error = None if delivered else f"HTTP {response.status}: {text}".strip()
            return Attempt(
                http_status=response.status,
                error=error,
                delivered=delivered,
                retryable=retryable,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
    except TimeoutError:
        return Attempt(None, f"timeout after {timeout_s:g} s", delivered=False, retryable=True)
    except (aiohttp.ClientError, OSError) as exc:
        message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        return Attempt(None, message, delivered=False, retryable=True)
