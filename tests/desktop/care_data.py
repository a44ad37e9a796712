"""Realistic C.A.R.E. audit entries and states for dashboard tests, pictures and the bench:
each escalation is followed by the gate's decision and, when allowed, often a state
transition and a workflow trigger, as the server's pipeline writes them."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aisha_desktop.client.models import Change, ChangesPage
from aisha_desktop.replica import Replica

TRIGGERS = (
    ("lead_stagnant", 34), ("activity_overdue", 24), ("deal_decay", 12), ("objection", 10),
    ("pricing_or_contract", 8), ("opportunity_hot", 6), ("negative_sentiment", 4),
    ("compliance_sensitive", 2),
)  # fmt: skip
STATES = (("cold", 46), ("warm", 22), ("hot", 9), ("nurture", 11), ("stale", 6), ("won", 4),
          ("lost", 2))  # fmt: skip
ENTITY = {"lead_stagnant": "lead", "activity_overdue": "lead", "deal_decay": "opportunity",
          "opportunity_hot": "opportunity"}  # fmt: skip


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def audit_entries(
    last_day: date, days: int, per_day: int, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """About `per_day` entries a day for `days` days ending `last_day` (weekdays busier)."""
    rng = random.Random(seed)
    counter = 0
    for back in range(days - 1, -1, -1):
        day = last_day - timedelta(days=back)
        weight = 1.0 if day.weekday() < 5 else 0.45
        start = datetime.combine(day, time(), UTC)
        made = 0
        target = int(per_day * weight * rng.uniform(0.8, 1.2))
        while made < target:
            trigger = _pick(rng, TRIGGERS)
            entity_type = ENTITY.get(trigger, "contact" if rng.random() < 0.4 else "lead")
            entity_id = str(uuid.UUID(int=rng.getrandbits(122)))
            at = start + timedelta(seconds=rng.randrange(86_000))
            origin = "care_autonomous" if trigger in ENTITY else "human"
            steps = [("ESCALATION_DETECTED", f"{trigger.replace('_', ' ')} detected")]
            allowed = rng.random() < 0.72
            steps.append(
                ("ACTION_ALLOWED", "Allowed by the default rule table")
                if allowed
                else ("ACTION_BLOCKED", "Blocked: autonomous action needs a human here")
            )
            if allowed and rng.random() < 0.5:
                steps.append(("STATE_TRANSITION", "warm -> hot on engagement"))
            if allowed and rng.random() < 0.6:
                steps.append(("WORKFLOW_TRIGGERED", "Workflow webhook answered 200"))
            for offset, (event, reason) in enumerate(steps):
                counter += 1
                yield {
                    "id": str(uuid.UUID(int=(seed << 64) + counter)),
                    "tenant_id": str(uuid.UUID(int=1)),
                    "event_type": event,
                    "entity_type": entity_type,
                    "entity_id": entity_id,
                    "action_origin": origin,
                    "reason": reason,
                    "metadata": {
                        "trigger_type": trigger,
                        "policy_gate_result": "allowed" if allowed else "blocked",
                        "confidence": 0.9,
                    },
                    "created_at": (at + timedelta(milliseconds=offset)).isoformat(),
                    "version": 1,
                }
                made += 1


def states(count: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": str(uuid.UUID(int=(seed << 64) + n)),
            "entity_type": "lead",
            "entity_id": str(uuid.UUID(int=(seed << 80) + n)),
            "current_state": _pick(rng, STATES),
            "previous_state": "cold",
            "transitioned_at": "2026-11-01T09:00:00+00:00",
            "transition_reason": "signal",
            "metadata": {},
            "version": 1,
        }
        for n in range(count)
    ]


def apply(replica: Replica, rows: list[dict[str, Any]], entity: str = "care_audit_log") -> None:
    """Rows as a pulled log page (as sync would apply them)."""
    changes = [Change(entity, r["id"], "upsert", 1, 1, r) for r in rows]
    cursor = replica.cursor
    replica.apply_page(ChangesPage(changes, f"{cursor or 'c'}+", False, False), cursor)
