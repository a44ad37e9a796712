"""The C.A.R.E. policy gate (guide 13.5): may this action proceed?

Evaluation order (first answer wins):

1. hard rules: autonomous `delete_entity` is blocked; outgoing text that impersonates a human,
   makes binding commitments or price concessions, asks to delete data or talks litigation is
   blocked when autonomous (flagged `warn` for a human to review when a human sends it);
2. `CARE_POLICY_MODE=readonly`: every autonomous action is blocked;
3. the tenant's custom rules (stored in `care_policy_rules`), by priority;
4. the default rule table (the guide's five rows, then the documented extensions below);
5. text signals that need a human (commitments, negotiation, urgency): `defer` when
   autonomous; human text about contracts/terms or amounts of $10,000 or more: `warn`.

Modes: `strict` (default) applies the table as written and defers autonomous actions no rule
covers; `permissive` turns the table's autonomous `blocked` for messages to cold/stale
relationships and every `defer` into `warn` (allowed, flagged); hard rules stay; `readonly`
blocks every autonomous action.  Human actions are never blocked by mode or table.

The origin comes from `classify_origin`, never from request input: an API request is a
human's, only the server's own workers act as `care_autonomous`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from aisha_server.care.audit import ORIGIN_AUTONOMOUS, ORIGIN_HUMAN
from aisha_server.care.states import CareState
from aisha_server.config import CarePolicyMode


class GateResult(enum.StrEnum):
    ALLOWED = "allowed"
    BLOCKED = "blocked"
    WARN = "warn"
    DEFER = "defer"


class ActionType(enum.StrEnum):
    SEND_MESSAGE = "send_message"
    UPDATE_STATE = "update_state"
    DELETE_ENTITY = "delete_entity"
    TRIGGER_WORKFLOW = "trigger_workflow"
    CREATE_TASK = "create_task"
    CREATE_NOTE = "create_note"
    SCHEDULE_MEETING = "schedule_meeting"


ORIGINS: Final = (ORIGIN_HUMAN, ORIGIN_AUTONOMOUS)
ANY_STATE: Final = frozenset(CareState)


def classify_origin(actor: object | None) -> str:
    """`human` for anything acting through an authenticated request (a principal),
    `care_autonomous` for the server's own C.A.R.E. workers (no principal).  There is no
    parameter a request could set to change it."""
    return ORIGIN_HUMAN if actor is not None else ORIGIN_AUTONOMOUS


@dataclass(frozen=True, slots=True)
class Rule:
    action_type: str  # an ActionType value or "*"
    states: frozenset[CareState]
    origin: str | None  # None = any origin
    result: GateResult
    reason: str
    entity_type: str | None = None
    rule_id: str | None = None  # custom rules: their id

    def matches(self, action: ActionRequest) -> bool:
        return (
            self.action_type in ("*", action.action_type)
            and action.current_state in self.states
            and self.origin in (None, action.action_origin)
            and self.entity_type in (None, action.entity_type)
        )


_COLD_STALE = frozenset({CareState.COLD, CareState.STALE})
_WARM_HOT = frozenset({CareState.WARM, CareState.HOT})
_ENDED = frozenset({CareState.WON, CareState.LOST})
A = ActionType

# The guide's table, row for row, then our extensions (docs/care.md "Policy gate").
DEFAULT_RULES: Final[tuple[Rule, ...]] = (
    Rule(A.SEND_MESSAGE, ANY_STATE, ORIGIN_HUMAN, GateResult.ALLOWED, "human message"),
    Rule(A.SEND_MESSAGE, _COLD_STALE, ORIGIN_AUTONOMOUS, GateResult.BLOCKED,
         "autonomous message to a cold or stale relationship"),
    Rule(A.SEND_MESSAGE, _WARM_HOT, ORIGIN_AUTONOMOUS, GateResult.ALLOWED,
         "autonomous message to a warm or hot relationship"),
    Rule(A.UPDATE_STATE, ANY_STATE, ORIGIN_AUTONOMOUS, GateResult.ALLOWED,
         "autonomous state update"),
    Rule(A.DELETE_ENTITY, ANY_STATE, ORIGIN_AUTONOMOUS, GateResult.BLOCKED,
         "autonomous deletion"),
    # extensions
    Rule(A.TRIGGER_WORKFLOW, _ENDED, ORIGIN_AUTONOMOUS, GateResult.BLOCKED,
         "workflow trigger for an ended relationship (won/lost)"),
    Rule(A.TRIGGER_WORKFLOW, ANY_STATE - _ENDED, ORIGIN_AUTONOMOUS, GateResult.ALLOWED,
         "workflow trigger for an escalation"),
    Rule(A.CREATE_TASK, ANY_STATE, ORIGIN_AUTONOMOUS, GateResult.ALLOWED, "follow-up task"),
    Rule(A.CREATE_NOTE, ANY_STATE, ORIGIN_AUTONOMOUS, GateResult.ALLOWED, "internal note"),
    Rule(A.SCHEDULE_MEETING, ANY_STATE, ORIGIN_AUTONOMOUS, GateResult.DEFER,
         "autonomous meeting with a customer needs a human"),
    Rule("*", ANY_STATE, ORIGIN_HUMAN, GateResult.ALLOWED, "human action"),
)  # fmt: skip
# Rows 2 and 5 of the guide's table, by index, for the permissive relaxation
_COLD_STALE_MESSAGE_RULE: Final = DEFAULT_RULES[1]


@dataclass(frozen=True, slots=True)
class ActionRequest:
    action_type: str
    action_origin: str
    current_state: CareState
    entity_type: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    result: GateResult
    reason: str
    source: str  # hard_rule | mode | custom | default | text | fallback
    rule_id: str | None = None
    flags: tuple[str, ...] = ()

    @property
    def proceeds(self) -> bool:
        return self.result in (GateResult.ALLOWED, GateResult.WARN)

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy_gate_result": self.result.value,
            "reason": self.reason,
            "source": self.source,
            "rule_id": self.rule_id,
            "flags": list(self.flags),
        }


# -- text rules (care-facts "Policy hard rules") -------------------------------------------
_SIGN_OFF = re.compile(
    r"(?:^|\n|[.!]\s)\s*(?:best regards|kind regards|warm regards|regards|sincerely|cheers|"
    r"thanks|thank you|best|yours truly)\s*[,.!-]?\s*\n?\s*"
    r"(?P<name>[A-Z][\w'.-]*(?:[ \t]+[A-Z][\w'.-]*){0,2})\s*$",
    re.IGNORECASE,
)
_SIGNED_AS = re.compile(r"\bsigned(?:\s+off)?\s+as\s+(?P<name>[\w'.-]+(?:\s+[\w'.-]+)?)", re.I)
_AI_NAMES = re.compile(
    r"\b(?:ai|aisha|assistant|bot|system|team|c\.?a\.?r\.?e\.?|automated)\b", re.IGNORECASE
)
HARD_TEXT_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("binding commitment", re.compile(r"\bwe\s+(?:guarantee|promise|commit|pledge)\b", re.I)),
    ("legally binding language", re.compile(r"\blegally\s+binding\b", re.I)),
    (
        "price concession",
        re.compile(r"\bdiscount\s+of\s+(?:\$|usd\s*)?\d|\bfinal\s+price\b|\bbest\s+price\b", re.I),
    ),
    (
        "data deletion request (route to a human)",
        re.compile(r"\bdelete\s+(?:all\s+)?(?:of\s+)?your\s+(?:personal\s+)?data\b", re.I),
    ),
    ("cease and desist", re.compile(r"\bcease\s+and\s+desist\b", re.I)),
    ("litigation", re.compile(r"\b(?:lawsuit|litigation|legal\s+action)\b", re.I)),
)
DEFER_TEXT_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    (
        "strong commitment",
        re.compile(r"\bwe\s+will\s+definitely\b|\bi\s+(?:can\s+)?guarantee\b", re.I),
    ),
    ("negotiation", re.compile(r"\bnegotiat(?:e|es|ed|ing|ion|ions)\b", re.I)),
    ("urgency", re.compile(r"\b(?:urgent|urgently|asap)\b", re.I)),
)
_CONTRACT_TERMS = re.compile(r"\b(?:contract|contracts|terms)\b", re.I)
_AMOUNT = re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)\s*(k\b)?", re.I)
REVIEW_AMOUNT: Final = Decimal(10_000)


def impersonation(text: str) -> str | None:
    """The human name a sign-off claims, unless it names the AI/system."""
    for pattern in (_SIGN_OFF, _SIGNED_AS):
        match = pattern.search(text.strip())
        if match and not _AI_NAMES.search(match.group("name")):
            return match.group("name").strip()
    return None


def hard_text_violations(text: str) -> list[str]:
    found = [label for label, pattern in HARD_TEXT_RULES if pattern.search(text)]
    name = impersonation(text)
    if name is not None:
        found.insert(0, f"impersonates a human in the sign-off ({name})")
    return found


def _large_amount(text: str) -> bool:
    for match in _AMOUNT.finditer(text):
        try:
            value = Decimal(match.group(1).replace(",", ""))
        except InvalidOperation:
            continue
        if match.group(2):
            value *= 1000
        if value >= REVIEW_AMOUNT:
            return True
    return False


def _relax(decision: Decision, mode: CarePolicyMode) -> Decision:
    if mode is CarePolicyMode.PERMISSIVE and decision.result is GateResult.DEFER:
        return Decision(
            GateResult.WARN, decision.reason, decision.source, decision.rule_id,
            (*decision.flags, "permissive: would defer in strict mode"),
        )  # fmt: skip
    return decision


def evaluate_policy(
    action: ActionRequest,
    *,
    mode: CarePolicyMode,
    custom_rules: Iterable[Rule] = (),
) -> Decision:
    """The gate's answer for one action (see the module docstring for the order)."""
    autonomous = action.action_origin == ORIGIN_AUTONOMOUS
    text = action.text or ""
    # 1. hard rules
    if autonomous and action.action_type == ActionType.DELETE_ENTITY:
        return Decision(GateResult.BLOCKED, "autonomous deletion is never allowed", "hard_rule")
    violations = hard_text_violations(text) if text else []
    if violations and autonomous:
        return Decision(GateResult.BLOCKED, "; ".join(violations), "hard_rule")
    # 2. read-only mode
    if autonomous and mode is CarePolicyMode.READONLY:
        return Decision(
            GateResult.BLOCKED, "CARE_POLICY_MODE=readonly blocks autonomous actions", "mode"
        )
    # 3. custom rules, then 4. the defaults
    decision: Decision | None = None
    for rule in custom_rules:
        if rule.matches(action):
            decision = Decision(rule.result, rule.reason, "custom", rule.rule_id)
            break
    if decision is None:
        for rule in DEFAULT_RULES:
            if rule.matches(action):
                decision = Decision(rule.result, rule.reason, "default")
                if rule is _COLD_STALE_MESSAGE_RULE and mode is CarePolicyMode.PERMISSIVE:
                    decision = Decision(
                        GateResult.WARN, rule.reason, "default", None,
                        ("permissive: blocked in strict mode",),
                    )  # fmt: skip
                break
    if decision is None:
        decision = Decision(
            GateResult.DEFER,
            f"no rule covers autonomous {action.action_type} in state {action.current_state}",
            "fallback",
        )
    if decision.result is GateResult.BLOCKED:
        return decision
    # 5. text that needs a human
    if text and autonomous:
        needs_human = [label for label, pattern in DEFER_TEXT_RULES if pattern.search(text)]
        if needs_human:
            decision = Decision(
                GateResult.DEFER, "needs a human: " + ", ".join(needs_human), "text"
            )
    elif text:
        flags = list(violations)
        if _CONTRACT_TERMS.search(text):
            flags.append("mentions contracts or terms")
        if _large_amount(text):
            flags.append("mentions an amount of $10,000 or more")
        if flags and decision.result is GateResult.ALLOWED:
            decision = Decision(GateResult.WARN, "flagged for review: " + ", ".join(flags), "text")
    return _relax(decision, mode)
