"""C.A.R.E. workflow triggers (guide 13.6) end to end on both backends: the outbox, the
worker against a real receiver on 127.0.0.1 (timeouts, 5xx, 429, 4xx, refused connections,
recovery), the retry matrix, durability across restarts and between two instances, the kill
switch (13.2), the guide's Node `verifyWebhook` snippet run with `node`, and the admin API
(list, replay, tenant isolation)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.app import create_app
from aisha_server.care.audit import WORKFLOW_TRIGGERED
from aisha_server.config import Settings
from aisha_server.db.base import utcnow
from aisha_server.db.models import CareAuditLog
from aisha_server.db.models.deliveries import CareTriggerDelivery
from aisha_server.webhooks import signing
from aisha_server.webhooks.delivery import enqueue_care_trigger
from aisha_server.workers.care_triggers import DeliveryTiming
from tests.conftest import free_port
from tests.factories import make_tenant, user_with_headers

SECRET = "whsec-" + "k" * 58
FAST = DeliveryTiming(
    poll_interval=0.05,
    backoff_base=0.05,
    backoff_cap=0.2,
    round_base=0.3,
    round_cap=1.0,
)
# what the guide prints, character for character (13.6 "Security: HMAC Signature Verification")
GUIDE_SNIPPET = """\
// Verify signature (Node.js example)
const crypto = require('crypto');

function verifyWebhook(payload, signature, secret) {
  const expectedSig = crypto
    .createHmac('sha256', secret)
    .update(JSON.stringify(payload))
    .digest('hex');

  return crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expectedSig));
}
"""


# -- a real receiver -----------------------------------------------------------------------


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    at: float


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 answering from a script: an int is a status, "hang"
    waits past any client timeout; when the script is empty it answers `default`."""

    port: int
    script: list[int | str] = field(default_factory=list)
    default: int | str = 200
    received: list[Received] = field(default_factory=list)
    delay: float = 0.0
    retry_after: str = "0"  # sent with 429
    in_flight: int = 0
    most_in_flight: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/care-escalation"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(body, dict(request.headers), time.time()))
        action = self.script.pop(0) if self.script else self.default
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if action == "hang":
            await asyncio.sleep(30)
            return web.Response(status=200)
        status = int(action)
        headers = {"Retry-After": self.retry_after} if status == 429 else {}
        if status in (301, 302, 307):
            headers["Location"] = self.url + "/elsewhere"
        return web.Response(status=status, text=f"answer {status}", headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/care-escalation", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def event_ids(self) -> list[str]:
        return [r.headers["X-AISHA-EVENT-ID"] for r in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver(free_port())
    await rx.start()
    yield rx
    await rx.stop()


@pytest.fixture
def trigger_settings() -> dict[str, Any]:
    """Parametrise this to change the trigger configuration of one test."""
    return {}


@pytest.fixture
def settings_overrides(receiver: Receiver, trigger_settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "CARE_ENABLED": True,
        "CARE_WORKFLOW_TRIGGERS_ENABLED": True,
        "CARE_WORKFLOW_ESCALATION_WEBHOOK_URL": receiver.url,
        "CARE_WORKFLOW_WEBHOOK_SECRET": SECRET,
        "CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS": 300,
        "CARE_WORKFLOW_WEBHOOK_MAX_RETRIES": 2,
        **trigger_settings,
    }


@pytest.fixture
def app(settings: Settings) -> web.Application:
    application = create_app(settings)
    application[keys.CARE_TRIGGER_WORKER].timing = FAST
    return application


# -- helpers -------------------------------------------------------------------------------


def payload(**extra: Any) -> dict[str, Any]:
    return {
        "type": "care.escalation_detected",
        "entity_type": "lead",
        "entity_id": str(uuid.uuid4()),
        "action_origin": "care_autonomous",
        "reason": "Lead stagnant for 7+ days",
        "policy_gate_result": "allowed",
        "trigger_type": "lead_stagnant",
        "meta": {"days_stagnant": 7, "last_contact": "2026-01-17T10:30:00.000Z"},
        **extra,
    }


async def enqueue(app: web.Application, tenant_id: uuid.UUID, **extra: Any) -> uuid.UUID:
    event_id: uuid.UUID = await app[keys.DB].run(
        lambda s: enqueue_care_trigger(s, tenant_id=tenant_id, payload=payload(**extra)),
        tenant_id=tenant_id,
    )
    app[keys.CARE_TRIGGER_WORKER].wake()
    return event_id


async def row(app: web.Application, event_id: uuid.UUID) -> CareTriggerDelivery:
    found = await app[keys.DB].run(
        lambda s: s.get(CareTriggerDelivery, event_id), system=True, write=False
    )
    assert found is not None
    return found


async def audits(app: web.Application, event_id: uuid.UUID | None = None) -> list[CareAuditLog]:
    def read(session: Session) -> list[CareAuditLog]:
        query = select(CareAuditLog).where(CareAuditLog.event_type == WORKFLOW_TRIGGERED)
        found = [
            a
            for a in session.scalars(query.order_by(CareAuditLog.created_at))
            if event_id is None or (a.metadata_ or {}).get("event_id") == str(event_id)
        ]
        return sorted(found, key=lambda a: (a.metadata_ or {}).get("attempt") or 0)

    return await app[keys.DB].run(read, system=True, write=False)


async def wait_until(
    app: web.Application,
    event_id: uuid.UUID,
    done: Callable[[CareTriggerDelivery], bool],
    timeout: float = 10.0,
) -> CareTriggerDelivery:
    deadline = time.monotonic() + timeout
    while True:
        current = await row(app, event_id)
        if done(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(
                f"delivery stuck: status={current.status} attempts={current.attempts} "
                f"rounds={current.rounds} error={current.last_error}"
            )
        await asyncio.sleep(0.03)


def settled(status: str, *, attempts: int | None = None, rounds: int | None = None) -> Any:
    def check(r: CareTriggerDelivery) -> bool:
        return (
            r.status == status
            and r.lease_token is None
            and (attempts is None or r.attempts == attempts)
            and (rounds is None or r.rounds >= rounds)
        )

    return check


# -- the outbox ----------------------------------------------------------------------------


async def test_enqueue_stores_the_guide_contract_in_the_callers_transaction(
    client: TestClient[Any, Any],
) -> None:
    app = client.app
    worker = app[keys.CARE_TRIGGER_WORKER]
    worker.disabled_reason = "held for this test"  # nothing is sent while we look
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    stored = await row(app, event_id)
    body = json.loads(stored.body)
    assert list(body)[:4] == ["event_id", "type", "ts", "tenant_id"]
    assert body["event_id"] == str(event_id) and body["tenant_id"] == str(tenant.id)
    assert body["type"] == "care.escalation_detected"
    assert body["ts"].endswith("Z") and len(body["ts"]) == len("2026-01-24T10:30:00.000Z")
    for key in ("entity_type", "entity_id", "action_origin", "reason", "policy_gate_result",
                "trigger_type", "meta"):  # fmt: skip
        assert key in body
    assert (stored.status, stored.attempts, stored.trigger_type) == ("pending", 0, "lead_stagnant")

    # the same event id twice keeps the first row
    again = await app[keys.DB].run(
        lambda s: enqueue_care_trigger(
            s, tenant_id=tenant.id, payload=payload(event_id=str(event_id), reason="other")
        ),
        tenant_id=tenant.id,
    )
    assert again == event_id
    assert (await row(app, event_id)).body == stored.body
    # another tenant naming that id changes nothing of it and learns nothing
    intruder = await make_tenant(app)
    await app[keys.DB].run(
        lambda s: enqueue_care_trigger(
            s, tenant_id=intruder.id, payload=payload(event_id=str(event_id))
        ),
        tenant_id=intruder.id,
    )
    kept = await row(app, event_id)
    assert (kept.tenant_id, kept.body) == (tenant.id, stored.body)

    # the caller's rollback takes the trigger with it
    lost = uuid.uuid4()

    def enqueue_then_fail(session: Session) -> None:
        enqueue_care_trigger(session, tenant_id=tenant.id, payload=payload(event_id=lost))
        raise RuntimeError("the decision failed after queueing")

    with pytest.raises(RuntimeError):
        await app[keys.DB].run(enqueue_then_fail, tenant_id=tenant.id)
    gone = await app[keys.DB].run(
        lambda s: s.get(CareTriggerDelivery, lost), system=True, write=False
    )
    assert gone is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"entity_id": None}, "entity_id must be a UUID"),
        ({"event_id": "escalation-123-abc"}, "event_id must be a UUID"),
        ({"tenant_id": str(uuid.uuid4())}, "tenant_id differs"),
        ({"meta": {"ratio": float("nan")}}, "no JSON form"),
        ({"meta": {"big": 2**60}}, "beyond what JSON receivers keep exact"),
        ({"meta": {"when": object()}}, "cannot be sent"),
    ],
)
async def test_enqueue_refuses_payloads_it_cannot_send_faithfully(
    client: TestClient[Any, Any], bad: dict[str, Any], message: str
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    with pytest.raises(ValueError, match=message):
        await app[keys.DB].run(
            lambda s: enqueue_care_trigger(s, tenant_id=tenant.id, payload=payload(**bad)),
            tenant_id=tenant.id,
        )
    count = await app[keys.DB].run(
        lambda s: len(list(s.scalars(select(CareTriggerDelivery.id)))), system=True, write=False
    )
    assert count == 0


# -- signatures ----------------------------------------------------------------------------


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required: the guide's verifyWebhook snippet is run with it")
    return node


NODE_CHECK = (
    GUIDE_SNIPPET
    + """
const fs = require('fs');
const [bodyFile, headersFile, secret] = process.argv.slice(2);
const raw = fs.readFileSync(bodyFile, 'utf8');
const headers = JSON.parse(fs.readFileSync(headersFile, 'utf8'));
const sig = headers['X-AISHA-SIGNATURE'];
const ts = headers['X-AISHA-TIMESTAMP'];
const v2 = crypto.createHmac('sha256', secret).update(ts + '.' + raw).digest('hex');
console.log(JSON.stringify({
  guide: verifyWebhook(JSON.parse(raw), sig, secret),
  v2: v2 === headers['X-AISHA-SIGNATURE-V2'],
}));
"""
)


def run_node(tmp: Path, body: bytes, headers: dict[str, str], secret: str) -> dict[str, bool]:
    script = tmp / "verify.js"
    script.write_text(NODE_CHECK)
    (tmp / "body.json").write_bytes(body)
    (tmp / "headers.json").write_text(json.dumps(headers))
    done = subprocess.run(
        [_node(), str(script), str(tmp / "body.json"), str(tmp / "headers.json"), secret],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout)
    return result


async def test_guide_node_snippet_accepts_the_signature_of_a_delivered_trigger(
    client: TestClient[Any, Any], receiver: Receiver, tmp_path: Path
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    meta = {
        "days_stagnant": 7,
        "amount": 125000.5,
        "ratio": 1e-7,
        "big": 1e21,
        "whole": 3.0,
        "note": "Müller \u2013 \u201cquoted\u201d 日本 \u2028 \x01 </script>",
        "10": "numeric keys come first in JavaScript",
        "nested": {"b": [1, 2.5, None, True], "a": {}},
    }
    event_id = await enqueue(app, tenant.id, meta=meta)
    await wait_until(app, event_id, settled("delivered"))
    [got] = receiver.received
    headers = {k: v for k, v in got.headers.items() if k.upper().startswith("X-AISHA")}
    headers = {k.upper(): v for k, v in headers.items()}
    assert got.body == (await row(app, event_id)).body.encode("utf-8")
    assert headers["X-AISHA-SIGNATURE"] == signing.body_signature(SECRET, got.body)
    assert headers["X-AISHA-SIGNATURE"] == headers["X-AISHA-SIGNATURE"].lower()
    assert len(headers["X-AISHA-SIGNATURE"]) == 64
    assert headers["X-AISHA-EVENT-ID"] == str(event_id)
    assert got.headers["User-Agent"].startswith("AiSHA-CARE/")
    assert got.headers["Content-Type"] == "application/json"
    assert abs(int(headers["X-AISHA-TIMESTAMP"]) - got.at) < 5
    assert signing.verify(SECRET, got.body, headers, now=time.time())
    assert not signing.verify(SECRET, got.body, headers, now=time.time() + 3600)  # replayed

    assert run_node(tmp_path, got.body, headers, SECRET) == {"guide": True, "v2": True}
    # and the snippet is not a rubber stamp: another secret or a changed body fails
    assert run_node(tmp_path, got.body, headers, SECRET + "x") == {"guide": False, "v2": False}
    tampered = got.body.replace(b'"days_stagnant":7', b'"days_stagnant":8')
    assert tampered != got.body
    assert run_node(tmp_path, tampered, headers, SECRET) == {"guide": False, "v2": False}


def test_canonical_body_survives_javascript_reserialisation(tmp_path: Path) -> None:
    """`JSON.stringify(JSON.parse(body)) === body` for awkward values, checked by node."""
    cases: list[dict[str, Any]] = [
        {"x": 0.1, "y": -0.0, "z": 1e16, "w": 123e-20, "v": 2.5e-6, "u": 1.7976931348623157e308},
        {"2": 1, "10": 2, "01": 3, "-1": 4, "4294967295": 5, "a": 6, "1": 7},
        {"s": '\x00\x1f\x7f"\\/\u2028\u2029\ud800 é 😀', "t": [True, False, None]},
        {"nested": [{"deep": [[], {}]}], "n": -12345678901234, "f": 5e-324},
    ]
    bodies = [signing.canonical_json(c).decode("utf-8") for c in cases]
    (tmp_path / "bodies.json").write_text(json.dumps(bodies))
    script = (
        "const b = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));"
        "console.log(JSON.stringify(b.map(x => JSON.stringify(JSON.parse(x)) === x)));"
    )
    done = subprocess.run(
        [_node(), "-e", script, str(tmp_path / "bodies.json")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True] * len(cases)


# -- the retry matrix ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    script: list[int | str]
    retries: int
    status: str
    http: list[int | None]  # http_status of each audited attempt, in order
    requests: int


MATRIX = {
    "2xx at once": Case([200], 2, "delivered", [200], 1),
    "201 counts as delivered": Case([201], 2, "delivered", [201], 1),
    "500 then ok": Case([500, 200], 2, "delivered", [500, 200], 2),
    "503 twice then ok": Case([503, 503, 204], 2, "delivered", [503, 503, 204], 3),
    "429 then ok": Case([429, 200], 2, "delivered", [429, 200], 2),
    "timeout then ok": Case(["hang", 200], 2, "delivered", [None, 200], 2),
    "400 is not retried": Case([400, 200], 2, "failed", [400], 1),
    "404 is not retried": Case([404, 200], 2, "failed", [404], 1),
    "422 is not retried": Case([422, 200], 2, "failed", [422], 1),
    "redirect is not followed": Case([302, 200], 2, "failed", [302], 1),
    "retries=0 means one attempt": Case([500, 200], 0, "pending", [500], 1),
    "round exhausted stays queued": Case([500, 502, 504, 200], 2, "pending", [500, 502, 504], 3),
    "5xx then 4xx stops": Case([500, 403, 200], 5, "failed", [500, 403], 2),
}


@pytest.mark.parametrize("name", list(MATRIX))
async def test_retry_matrix(
    client: TestClient[Any, Any],
    receiver: Receiver,
    name: str,
) -> None:
    case = MATRIX[name]
    app = client.app
    worker = app[keys.CARE_TRIGGER_WORKER]
    worker._retries = case.retries  # the setting, per case (the app reads it once)
    # a failed round waits long enough for the assertions below to see it
    worker.timing = DeliveryTiming(
        poll_interval=0.05, backoff_base=0.05, backoff_cap=0.2, round_base=60.0
    )
    receiver.script = list(case.script)
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    final = await wait_until(app, event_id, settled(case.status, attempts=len(case.http)))
    await asyncio.sleep(0.3)  # nothing more arrives: no hidden extra attempts
    assert len(receiver.received) == case.requests
    assert receiver.event_ids() == [str(event_id)] * case.requests
    assert len({r.body for r in receiver.received}) == 1  # the same bytes every time
    final = await row(app, event_id)
    assert final.attempts == len(case.http)
    assert final.last_http_status == case.http[-1]
    if case.status == "pending":
        assert final.rounds == 1
        assert final.next_attempt_at > utcnow() + timedelta(seconds=30)
    if case.http[-1] is None:
        assert final.last_error is not None and "timeout" in final.last_error
    assert (worker.attempts, worker.delivered, worker.failed) == (
        len(case.http),
        int(case.status == "delivered"),
        int(case.status == "failed"),
    )
    entries = await audits(app, event_id)
    assert [(a.metadata_ or {})["http_status"] for a in entries] == case.http
    assert [(a.metadata_ or {})["attempt"] for a in entries] == list(range(1, len(case.http) + 1))
    for entry in entries:
        meta = entry.metadata_ or {}
        assert meta["action_type"] == "workflow_trigger"
        assert meta["trigger_type"] == "lead_stagnant"
        assert (entry.tenant_id, entry.entity_type, entry.action_origin) == (
            tenant.id,
            "lead",
            "care_autonomous",
        )


async def test_backoff_grows_between_retries(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    app[keys.CARE_TRIGGER_WORKER].timing = DeliveryTiming(
        poll_interval=0.05, backoff_base=0.2, backoff_cap=5.0, round_base=60.0
    )
    receiver.script = [500, 500, 200]
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    await wait_until(app, event_id, settled("delivered"))
    first, second, third = (r.at for r in receiver.received)
    assert 0.18 <= second - first < 1.0
    assert 0.38 <= third - second < 1.5  # doubled


@pytest.mark.parametrize("trigger_settings", [{"CARE_WORKFLOW_WEBHOOK_MAX_RETRIES": 1}])
async def test_receiver_recovers_after_failed_rounds(
    client: TestClient[Any, Any], receiver: Receiver, trigger_settings: dict[str, Any]
) -> None:
    app = client.app
    receiver.script = [500, "hang", 503, 500]  # two whole rounds fail
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    final = await wait_until(app, event_id, settled("delivered"), timeout=15)
    assert (final.attempts, final.rounds) == (5, 2)
    entries = await audits(app, event_id)
    assert [(a.metadata_ or {})["outcome"] for a in entries] == [
        "retry",
        "retry_later",
        "retry",
        "retry_later",
        "delivered",
    ]


async def test_refused_connection_is_retried_until_the_receiver_is_up(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    await receiver.stop()  # nothing listens on the port: connection refused
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    down = await wait_until(app, event_id, settled("pending", rounds=1))
    assert down.last_http_status is None and down.last_error
    assert receiver.received == []
    await receiver.start()
    await wait_until(app, event_id, settled("delivered"), timeout=15)
    assert receiver.event_ids() == [str(event_id)]


async def test_a_trigger_too_old_to_send_is_marked_failed_not_dropped(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    app[keys.CARE_TRIGGER_WORKER].timing = DeliveryTiming(
        poll_interval=0.05, backoff_base=0.05, backoff_cap=0.1, give_up_after=timedelta(0)
    )
    receiver.default = 503
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    final = await wait_until(app, event_id, settled("failed"))
    assert (final.attempts, final.last_http_status) == (3, 503)
    assert [(a.metadata_ or {})["outcome"] for a in await audits(app, event_id)][-1] == "failed"


# -- durability ----------------------------------------------------------------------------


async def _start(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    application = create_app(settings)
    application[keys.CARE_TRIGGER_WORKER].timing = FAST
    started: TestClient[Any, Any] = await aiohttp_client(application)
    return started


async def test_undelivered_triggers_survive_a_restart(
    aiohttp_client: Any, settings: Settings, receiver: Receiver
) -> None:
    receiver.default = 503
    first = await _start(aiohttp_client, settings)
    tenant = await make_tenant(first.app)
    event_id = await enqueue(first.app, tenant.id)
    await wait_until(first.app, event_id, settled("pending", rounds=1))
    await first.close()
    attempts_before = len(receiver.received)
    assert attempts_before >= 3

    receiver.default = 200
    second = await _start(aiohttp_client, settings)
    try:
        final = await wait_until(second.app, event_id, settled("delivered"), timeout=15)
        assert final.attempts == attempts_before + 1
        assert receiver.event_ids()[-1] == str(event_id)
    finally:
        await second.close()


@pytest.mark.parametrize("trigger_settings", [{"CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS": 5000}])
async def test_shutdown_mid_attempt_hands_the_trigger_back(
    aiohttp_client: Any, settings: Settings, receiver: Receiver, trigger_settings: dict[str, Any]
) -> None:
    receiver.script = ["hang"]
    first = await _start(aiohttp_client, settings)
    tenant = await make_tenant(first.app)
    event_id = await enqueue(first.app, tenant.id)
    deadline = time.monotonic() + 5
    while not receiver.received:
        assert time.monotonic() < deadline, "the worker never called"
        await asyncio.sleep(0.02)
    assert (await row(first.app, event_id)).lease_token is not None
    started = time.monotonic()
    await first.close()
    assert time.monotonic() - started < 3  # the hanging POST does not hold shutdown up

    probe = create_app(settings)  # not started: just its database
    try:
        handed_back = await row(probe, event_id)
    finally:
        await probe[keys.DB].close()
    # due again at once (not after the lease runs out), nothing recorded for the cut call
    assert (handed_back.status, handed_back.lease_token, handed_back.attempts) == (
        "pending",
        None,
        0,
    )
    assert handed_back.next_attempt_at <= utcnow()

    second = await _start(aiohttp_client, settings)
    try:
        final = await wait_until(second.app, event_id, settled("delivered"), timeout=5)
        assert final.attempts == 1
        assert receiver.event_ids() == [str(event_id)] * 2
    finally:
        await second.close()


async def test_two_instances_deliver_each_trigger_once(
    aiohttp_client: Any, settings: Settings, receiver: Receiver
) -> None:
    receiver.delay = 0.02
    one = await _start(aiohttp_client, settings)
    two = await _start(aiohttp_client, settings)
    try:
        tenant = await make_tenant(one.app)
        ids = [await enqueue(one.app, tenant.id) for _ in range(30)]
        two.app[keys.CARE_TRIGGER_WORKER].wake()
        for event_id in ids:
            await wait_until(one.app, event_id, settled("delivered", attempts=1), timeout=20)
        assert sorted(receiver.event_ids()) == sorted(str(i) for i in ids)
        assert len(await audits(one.app)) == 30
        worked = [c.app[keys.CARE_TRIGGER_WORKER].delivered for c in (one, two)]
        assert sum(worked) == 30
    finally:
        await one.close()
        await two.close()


async def test_two_instances_claim_disjoint_rows(
    aiohttp_client: Any, settings: Settings, receiver: Receiver
) -> None:
    """Both instances claim at the same moment: no row is handed to both."""
    one = await _start(aiohttp_client, settings)
    two = await _start(aiohttp_client, settings)
    try:
        for c in (one, two):
            c.app[keys.CARE_TRIGGER_WORKER].disabled_reason = "claims are made by the test"
        tenant = await make_tenant(one.app)
        for _ in range(40):
            await enqueue(one.app, tenant.id)
        from aisha_server.webhooks.delivery import claim_due

        async def claim(c: TestClient[Any, Any]) -> list[uuid.UUID]:
            got: list[uuid.UUID] = []
            for _ in range(10):
                rows = await c.app[keys.DB].run(
                    lambda s: claim_due(s, now=utcnow(), lease=timedelta(minutes=5), limit=3),
                    system=True,
                )
                got += [r.id for r in rows]
            return got

        a, b = await asyncio.gather(claim(one), claim(two))
        assert len(a) + len(b) == 40
        assert not set(a) & set(b)
    finally:
        await one.close()
        await two.close()


# -- the kill switch (13.2) ----------------------------------------------------------------

SWITCH = {
    "care on, triggers on": ({}, None),
    "care off": ({"CARE_ENABLED": False}, "CARE_ENABLED"),
    "triggers off": ({"CARE_WORKFLOW_TRIGGERS_ENABLED": False}, "CARE_WORKFLOW_TRIGGERS_ENABLED"),
    "both off": (
        {"CARE_ENABLED": False, "CARE_WORKFLOW_TRIGGERS_ENABLED": False},
        "CARE_ENABLED",
    ),
    "no url": ({"CARE_WORKFLOW_ESCALATION_WEBHOOK_URL": None}, "WEBHOOK_URL is not set"),
    "bad url": ({"CARE_WORKFLOW_ESCALATION_WEBHOOK_URL": "ftp://x/y"}, "not an http(s) URL"),
    "no secret": ({"CARE_WORKFLOW_WEBHOOK_SECRET": None}, "WEBHOOK_SECRET"),
}


@pytest.mark.parametrize(
    ("case", "trigger_settings"), [(k, v[0]) for k, v in SWITCH.items()], ids=list(SWITCH)
)
async def test_kill_switch_matrix(
    client: TestClient[Any, Any], receiver: Receiver, case: str, trigger_settings: dict[str, Any]
) -> None:
    app = client.app
    worker = app[keys.CARE_TRIGGER_WORKER]
    expected = SWITCH[case][1]
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    if expected is None:
        assert worker.enabled
        await wait_until(app, event_id, settled("delivered"))
        assert receiver.event_ids() == [str(event_id)]
        return
    assert not worker.enabled
    assert worker.disabled_reason is not None and expected in worker.disabled_reason
    assert await worker.run_once() == 0
    await asyncio.sleep(0.3)
    assert receiver.received == []
    held = await row(app, event_id)
    assert (held.status, held.attempts, held.lease_token) == ("pending", 0, None)  # kept
    assert await audits(app) == []
    snapshot = worker.snapshot()
    assert snapshot["enabled"] is False and snapshot["disabled_reason"] == worker.disabled_reason
    assert snapshot["webhook_host"] is None and snapshot["attempts"] == 0
    assert SECRET not in json.dumps(snapshot, default=str)


async def test_paused_tenants_are_held_back(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    paused_tenant, live_tenant = await make_tenant(app), await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", paused_tenant.id)
    resp = await client.put("/api/care/pause", json={"paused": True}, headers=headers)
    assert resp.status == 200, await resp.text()

    held = await enqueue(app, paused_tenant.id)
    sent = await enqueue(app, live_tenant.id)
    await wait_until(app, sent, settled("delivered"))
    await asyncio.sleep(0.2)
    assert receiver.event_ids() == [str(sent)]
    kept = await row(app, held)
    assert (kept.status, kept.attempts, kept.lease_token) == ("pending", 0, None)

    resp = await client.put("/api/care/pause", json={"paused": False}, headers=headers)
    assert resp.status == 200, await resp.text()
    app[keys.CARE_TRIGGER_WORKER].wake()
    await wait_until(app, held, settled("delivered"))
    assert receiver.event_ids() == [str(sent), str(held)]


async def test_the_claim_itself_reads_the_pause(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    """No set of paused tenants read earlier can be stale: a pause committed between the
    worker's cheap look for due rows and its claim still holds the row."""
    from aisha_server.webhooks.delivery import any_due, claim_due

    app = client.app
    db = app[keys.DB]
    tenant = await make_tenant(app)
    worker = app[keys.CARE_TRIGGER_WORKER]
    worker.disabled_reason = "held by the test"  # the test claims by hand
    event_id = await enqueue(app, tenant.id)
    assert await db.run(lambda s: any_due(s, now=utcnow()), system=True, write=False)

    _, headers = await user_with_headers(app, "admin", tenant.id)
    resp = await client.put("/api/care/pause", json={"paused": True}, headers=headers)
    assert resp.status == 200, await resp.text()

    def claim(session: Session) -> list[Any]:
        return claim_due(session, now=utcnow(), lease=timedelta(minutes=5), limit=5)

    assert await db.run(claim, system=True) == []
    assert not await db.run(lambda s: any_due(s, now=utcnow()), system=True, write=False)
    resp = await client.put("/api/care/pause", json={"paused": False}, headers=headers)
    assert resp.status == 200, await resp.text()
    [claimed] = await db.run(claim, system=True)
    assert claimed.id == event_id
    assert receiver.received == []


# -- the admin API -------------------------------------------------------------------------


async def _api(
    client: TestClient[Any, Any], method: str, path: str, headers: dict[str, str], **kw: Any
) -> tuple[int, Any]:
    resp = await client.request(method, path, headers=headers, **kw)
    return resp.status, await resp.json()


async def test_list_filters_and_keyset_pages(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    receiver.script = [400]
    failed = await enqueue(app, tenant.id)
    await wait_until(app, failed, settled("failed"))
    delivered = [await enqueue(app, tenant.id) for _ in range(4)]
    for event_id in delivered:
        await wait_until(app, event_id, settled("delivered"))

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, body = await _api(
            client, "GET", "/api/care/triggers/deliveries", headers, params=params
        )
        assert status == 200, body
        assert len(body["data"]) <= 2
        seen += [d["id"] for d in body["data"]]
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed([failed, *delivered])]  # newest first, no repeats

    status, body = await _api(
        client, "GET", "/api/care/triggers/deliveries", headers, params={"status": "failed"}
    )
    assert status == 200
    [only] = body["data"]
    assert (only["id"], only["status"], only["last_http_status"]) == (str(failed), "failed", 400)
    assert only["payload"]["event_id"] == str(failed) and only["next_attempt_at"] is None

    for params, code in (
        ({"status": "lost"}, 422),
        ({"limit": "0"}, 422),
        ({"limit": "201"}, 422),
        ({"cursor": "not-a-cursor"}, 400),
        ({"colour": "red"}, 422),
    ):
        status, body = await _api(
            client, "GET", "/api/care/triggers/deliveries", headers, params=params
        )
        assert status == code, (params, body)
        assert body["status"] == "error"


async def test_replay_sends_the_same_event_again_and_is_audited(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    admin, headers = await user_with_headers(app, "admin", tenant.id)
    receiver.script = [410]
    event_id = await enqueue(app, tenant.id)
    await wait_until(app, event_id, settled("failed"))

    status, body = await _api(
        client, "POST", f"/api/care/triggers/deliveries/{event_id}/replay", headers
    )
    assert status == 200, body
    assert body["data"]["status"] in ("pending", "delivered") and body["data"]["replays"] == 1
    final = await wait_until(app, event_id, settled("delivered", attempts=2))
    assert final.replays == 1
    assert receiver.event_ids() == [str(event_id)] * 2
    assert receiver.received[0].body == receiver.received[1].body

    # a delivered trigger can be replayed too
    status, body = await _api(
        client, "POST", f"/api/care/triggers/deliveries/{event_id}/replay", headers
    )
    assert status == 200
    await wait_until(app, event_id, settled("delivered", attempts=3))

    replays = [a for a in await audits(app, event_id) if a.metadata_ and
               a.metadata_["action_type"] == "workflow_trigger_replay"]  # fmt: skip
    assert len(replays) == 2
    assert replays[0].action_origin == "human"
    assert replays[0].metadata_ is not None
    assert replays[0].metadata_["requested_by"] == str(admin.id)
    assert replays[0].metadata_["previous_status"] == "failed"

    status, body = await _api(client, "GET", f"/api/care/triggers/deliveries/{event_id}", headers)
    assert status == 200 and body["data"]["replays"] == 2 and body["data"]["attempts"] == 3


async def test_replay_refuses_a_trigger_in_flight_and_unknown_ids(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    app[keys.CARE_TRIGGER_WORKER].disabled_reason = "held for this test"
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    event_id = await enqueue(app, tenant.id)

    def lease(session: Session) -> None:
        found = session.get(CareTriggerDelivery, event_id)
        assert found is not None
        found.lease_token = uuid.uuid4()

    await app[keys.DB].run(lease, system=True)
    status, body = await _api(
        client, "POST", f"/api/care/triggers/deliveries/{event_id}/replay", headers
    )
    assert (status, body["code"]) == (409, "delivery_in_flight")
    assert (await row(app, event_id)).replays == 0
    for bad in (uuid.uuid4(), "nope"):
        status, body = await _api(
            client, "POST", f"/api/care/triggers/deliveries/{bad}/replay", headers
        )
        assert (status, body["code"]) == (404, "trigger_delivery_not_found")


async def test_tenant_isolation_and_roles(client: TestClient[Any, Any], receiver: Receiver) -> None:
    app = client.app
    tenant_a, tenant_b = await make_tenant(app), await make_tenant(app)
    _, admin_a = await user_with_headers(app, "admin", tenant_a.id)
    _, admin_b = await user_with_headers(app, "admin", tenant_b.id)
    _, manager_a = await user_with_headers(app, "manager", tenant_a.id)
    _, superadmin = await user_with_headers(app, "superadmin")
    of_a = await enqueue(app, tenant_a.id)
    of_b = await enqueue(app, tenant_b.id)
    for event_id in (of_a, of_b):
        await wait_until(app, event_id, settled("delivered"))
    base = "/api/care/triggers/deliveries"

    status, body = await _api(client, "GET", base, admin_b)
    assert status == 200 and [d["id"] for d in body["data"]] == [str(of_b)]
    status, body = await _api(client, "GET", base, admin_a)
    assert status == 200 and [d["id"] for d in body["data"]] == [str(of_a)]
    status, body = await _api(client, "GET", f"{base}/{of_a}", admin_b)
    assert status == 404
    status, body = await _api(client, "POST", f"{base}/{of_a}/replay", admin_b)
    assert status == 404
    unchanged = await row(app, of_a)
    assert (unchanged.replays, unchanged.status, unchanged.attempts) == (0, "delivered", 1)
    status, body = await _api(client, "GET", base, admin_b, params={"tenant_id": str(tenant_a.id)})
    assert status == 403
    status, body = await _api(client, "GET", base, manager_a)
    assert status == 403
    status, body = await _api(client, "POST", f"{base}/{of_a}/replay", manager_a)
    assert status == 403
    assert (await row(app, of_a)).replays == 0

    status, body = await _api(client, "GET", base, superadmin)
    assert status == 200 and {d["id"] for d in body["data"]} == {str(of_a), str(of_b)}
    status, body = await _api(client, "GET", base, superadmin, params={"tenant_id": tenant_a.slug})
    assert status == 200 and [d["id"] for d in body["data"]] == [str(of_a)]
    status, body = await _api(client, "GET", f"{base}/{of_b}", superadmin)
    assert status == 200 and body["data"]["tenant_id"] == str(tenant_b.id)
    status, body = await _api(
        client, "GET", f"{base}/{of_b}", superadmin, params={"tenant_id": str(tenant_a.id)}
    )
    assert status == 404
    status, body = await _api(client, "POST", f"{base}/{of_b}/replay", superadmin)
    assert status == 200
    await wait_until(app, of_b, settled("delivered", attempts=2))


async def test_api_keys_need_read_care_and_update_care_to_replay(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    event_id = await enqueue(app, tenant.id)
    await wait_until(app, event_id, settled("delivered"))

    async def key(permissions: list[str]) -> dict[str, str]:
        resp = await client.post(
            "/api/api-keys", json={"name": "wf", "permissions": permissions}, headers=headers
        )
        assert resp.status == 201, await resp.text()
        return {"X-API-Key": (await resp.json())["data"]["key"]}

    base = "/api/care/triggers/deliveries"
    reader = await key(["read:care"])
    status, body = await _api(client, "GET", base, reader)
    assert status == 200 and [d["id"] for d in body["data"]] == [str(event_id)]
    status, body = await _api(client, "POST", f"{base}/{event_id}/replay", reader)
    assert (status, body["code"]) == (403, "api_key_scope")
    assert (await row(app, event_id)).replays == 0
    other = await key(["read:contacts"])
    status, body = await _api(client, "GET", base, other)
    assert status == 403
    writer = await key(["read:care", "update:care"])
    status, body = await _api(client, "POST", f"{base}/{event_id}/replay", writer)
    assert status == 200, body
    await wait_until(app, event_id, settled("delivered", attempts=2))


async def test_retry_after_is_honoured_within_the_cap(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    app[keys.CARE_TRIGGER_WORKER].timing = DeliveryTiming(
        poll_interval=0.05, backoff_base=0.05, backoff_cap=0.8, round_base=60.0
    )
    receiver.script, receiver.retry_after = [429, 200], "5"
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    await wait_until(app, event_id, settled("delivered"))
    first, second = (r.at for r in receiver.received)
    assert 0.75 <= second - first < 2.0  # Retry-After 5 s, capped at 0.8 s (not 0.05 s)


async def test_a_crashed_instances_lease_runs_out_and_another_delivers(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    from aisha_server.webhooks.delivery import claim_due

    app = client.app
    worker = app[keys.CARE_TRIGGER_WORKER]
    worker.disabled_reason = "the crashed instance claims first"
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    [claimed] = await app[keys.DB].run(
        lambda s: claim_due(s, now=utcnow(), lease=timedelta(seconds=0.5), limit=5), system=True
    )
    assert claimed.id == event_id
    worker.disabled_reason = None  # "this" instance; the claimer never comes back
    worker.wake()
    started = time.monotonic()
    final = await wait_until(app, event_id, settled("delivered"))
    assert time.monotonic() - started >= 0.3  # not before the lease ran out
    assert final.attempts == 1 and receiver.event_ids() == [str(event_id)]


async def test_old_delivered_and_failed_rows_are_pruned_pending_ones_kept(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    worker = app[keys.CARE_TRIGGER_WORKER]
    worker.disabled_reason = "rows are placed by the test"
    tenant = await make_tenant(app)
    ids = {status: await enqueue(app, tenant.id) for status in ("delivered", "failed", "pending")}
    recent = await enqueue(app, tenant.id)
    old = utcnow() - worker.retention - timedelta(days=1)

    def age(session: Session) -> None:
        for status, event_id in ids.items():
            found = session.get(CareTriggerDelivery, event_id)
            assert found is not None
            found.status = status
        session.flush()
        session.execute(
            CareTriggerDelivery.__table__.update()
            .where(CareTriggerDelivery.id.in_(list(ids.values())))
            .values(updated_at=old, created_at=old)
        )
        done = session.get(CareTriggerDelivery, recent)
        assert done is not None
        done.status = "delivered"

    await app[keys.DB].run(age, system=True)
    assert await worker.prune() == 2
    left = await app[keys.DB].run(
        lambda s: set(s.scalars(select(CareTriggerDelivery.id))), system=True, write=False
    )
    assert left == {ids["pending"], recent}


async def test_status_reports_the_switch_and_the_tenants_counts_without_secrets(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    app = client.app
    tenant, other = await make_tenant(app), await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    _, manager = await user_with_headers(app, "manager", tenant.id)
    receiver.script = [400]
    failed = await enqueue(app, tenant.id)
    await wait_until(app, failed, settled("failed"))
    sent = await enqueue(app, tenant.id)
    elsewhere = await enqueue(app, other.id)
    for event_id in (sent, elsewhere):
        await wait_until(app, event_id, settled("delivered"))

    resp = await client.get("/api/care/triggers/status", headers=admin)
    raw = await resp.text()
    assert resp.status == 200, raw
    data = (await resp.json())["data"]
    assert data["deliveries"] == {"pending": 0, "delivered": 1, "failed": 1}
    worker = data["worker"]
    assert (worker["enabled"], worker["disabled_reason"]) == (True, None)
    assert worker["webhook_host"] == "127.0.0.1"
    assert (worker["attempts"], worker["delivered"], worker["failed"]) == (3, 2, 1)
    assert SECRET not in raw and "/care-escalation" not in raw
    resp = await client.get("/api/care/triggers/status", headers=manager)
    assert resp.status == 403


# -- end to end with the C.A.R.E. pipeline -------------------------------------------------


@pytest.mark.parametrize("trigger_settings", [{"CARE_WORKER_ENABLED": False}])
async def test_a_scanned_escalation_reaches_the_receiver_signed(
    client: TestClient[Any, Any],
    receiver: Receiver,
    tmp_path: Path,
    trigger_settings: dict[str, Any],
) -> None:
    """The pipeline's outbox row (scan -> gate -> enqueue) is what the receiver gets."""
    from aisha_server.db.models import CareState, Lead

    app = client.app
    tenant = await make_tenant(app)
    now = utcnow()

    def seed(session: Session) -> uuid.UUID:
        lead = Lead(
            tenant_id=tenant.id,
            first_name="Ada",
            last_name="Lovelace",
            status="new",
            updated_at=now - timedelta(days=10),
        )
        session.add(lead)
        session.flush()
        session.add(
            CareState(
                tenant_id=tenant.id, entity_type="lead", entity_id=lead.id, current_state="warm"
            )
        )
        return lead.id

    lead_id = await app[keys.DB].run(seed, system=True)
    await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=now)
    app[keys.CARE_TRIGGER_WORKER].wake()
    deadline = time.monotonic() + 10
    while not receiver.received:
        assert time.monotonic() < deadline, "no trigger arrived"
        await asyncio.sleep(0.03)
    [got] = receiver.received
    body = json.loads(got.body)
    assert body["tenant_id"] == str(tenant.id)
    assert (body["entity_type"], body["entity_id"]) == ("lead", str(lead_id))
    assert (body["trigger_type"], body["policy_gate_result"], body["action_origin"]) == (
        "lead_stagnant",
        "allowed",
        "care_autonomous",
    )
    assert body["type"].startswith("care.") and body["reason"]
    assert body["meta"]["days_stagnant"] >= 7
    headers = {k.upper(): v for k, v in got.headers.items() if k.upper().startswith("X-AISHA")}
    assert headers["X-AISHA-EVENT-ID"] == body["event_id"]
    assert run_node(tmp_path, got.body, headers, SECRET) == {"guide": True, "v2": True}
    event_id = uuid.UUID(body["event_id"])
    await wait_until(app, event_id, settled("delivered", attempts=1))
    [entry] = await audits(app, event_id)
    assert (entry.metadata_ or {})["http_status"] == 200


# a timeout well above the receiver's delay: on a loaded machine a 300 ms one expired and
# the retry (attempt 2) is not what this test is about
@pytest.mark.parametrize("trigger_settings", [{"CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS": 5000}])
async def test_a_worker_holds_no_more_rows_than_it_delivers_at_once(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    """Claimed rows start their round at once (so each finishes within its lease)."""
    app = client.app
    worker = app[keys.CARE_TRIGGER_WORKER]
    worker.disabled_reason = "queue first"
    worker.timing = DeliveryTiming(poll_interval=0.05, concurrency=3)
    receiver.delay = 0.15
    tenant = await make_tenant(app)
    ids = [await enqueue(app, tenant.id) for _ in range(10)]
    worker.disabled_reason = None
    worker.wake()
    most_leased = 0
    deadline = time.monotonic() + 15
    while len(receiver.received) < 10 or receiver.in_flight:
        assert time.monotonic() < deadline, "not all delivered"
        leased = await app[keys.DB].run(
            lambda s: len(
                list(
                    s.scalars(
                        select(CareTriggerDelivery.id).where(
                            CareTriggerDelivery.lease_token.is_not(None)
                        )
                    )
                )
            ),
            system=True,
            write=False,
        )
        most_leased = max(most_leased, leased)
        await asyncio.sleep(0.02)
    assert receiver.most_in_flight == 3
    assert 1 <= most_leased <= 3
    for event_id in ids:
        await wait_until(app, event_id, settled("delivered", attempts=1))


# the guide's "View recent workflow trigger attempts" query (13.6), verbatim
GUIDE_MONITORING_SQL = """
SELECT
    metadata->>'event_id' as event_id,
    metadata->>'trigger_type' as trigger,
    metadata->>'http_status' as status,
    metadata->>'attempt' as attempt,
    created_at
FROM care_audit_log
WHERE metadata->>'action_type' = 'workflow_trigger'
ORDER BY created_at DESC
LIMIT 100;
"""


async def test_the_guides_monitoring_query_lists_every_attempt(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    from sqlalchemy import text

    app = client.app
    receiver.script = ["hang", 503, 200]
    tenant = await make_tenant(app)
    event_id = await enqueue(app, tenant.id)
    await wait_until(app, event_id, settled("delivered", attempts=3))
    rows = await app[keys.DB].run(
        lambda s: [tuple(r) for r in s.execute(text(GUIDE_MONITORING_SQL))],
        system=True,
        write=False,
    )
    # PostgreSQL's ->> gives text; SQLite's gives the JSON value's SQL type
    assert [tuple(None if v is None else str(v) for v in r[:4]) for r in rows] == [
        (str(event_id), "lead_stagnant", "200", "3"),
        (str(event_id), "lead_stagnant", "503", "2"),
        (str(event_id), "lead_stagnant", None, "1"),
    ]
