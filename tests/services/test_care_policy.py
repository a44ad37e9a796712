"""The C.A.R.E. policy gate (guide 13.5): the default table in each mode, hard rules, text
signals, custom rules before the defaults, and the origin classifier."""

from __future__ import annotations

import pytest

from aisha_server.care.audit import ORIGIN_AUTONOMOUS as AUTO
from aisha_server.care.audit import ORIGIN_HUMAN as HUMAN
from aisha_server.care.policy import (
    ActionRequest,
    GateResult,
    Rule,
    classify_origin,
    evaluate_policy,
    hard_text_violations,
    impersonation,
)
from aisha_server.care.states import CareState
from aisha_server.config import CarePolicyMode

S = CareState
M = CarePolicyMode
ALLOWED, BLOCKED, WARN, DEFER = (
    GateResult.ALLOWED, GateResult.BLOCKED, GateResult.WARN, GateResult.DEFER
)  # fmt: skip

# (action, state, origin) -> result in strict, permissive, readonly
TABLE = [
    # the guide's five rows
    ("send_message", S.COLD, HUMAN, (ALLOWED, ALLOWED, ALLOWED)),
    ("send_message", S.LOST, HUMAN, (ALLOWED, ALLOWED, ALLOWED)),
    ("send_message", S.COLD, AUTO, (BLOCKED, WARN, BLOCKED)),
    ("send_message", S.STALE, AUTO, (BLOCKED, WARN, BLOCKED)),
    ("send_message", S.WARM, AUTO, (ALLOWED, ALLOWED, BLOCKED)),
    ("send_message", S.HOT, AUTO, (ALLOWED, ALLOWED, BLOCKED)),
    ("update_state", S.COLD, AUTO, (ALLOWED, ALLOWED, BLOCKED)),
    ("update_state", S.HOT, AUTO, (ALLOWED, ALLOWED, BLOCKED)),
    ("delete_entity", S.WARM, AUTO, (BLOCKED, BLOCKED, BLOCKED)),
    ("delete_entity", S.COLD, AUTO, (BLOCKED, BLOCKED, BLOCKED)),
    # extensions (docs/care.md)
    ("delete_entity", S.WARM, HUMAN, (ALLOWED, ALLOWED, ALLOWED)),
    ("update_state", S.WARM, HUMAN, (ALLOWED, ALLOWED, ALLOWED)),
    ("trigger_workflow", S.STALE, AUTO, (ALLOWED, ALLOWED, BLOCKED)),
    ("trigger_workflow", S.WON, AUTO, (BLOCKED, BLOCKED, BLOCKED)),
    ("trigger_workflow", S.LOST, AUTO, (BLOCKED, BLOCKED, BLOCKED)),
    ("create_task", S.COLD, AUTO, (ALLOWED, ALLOWED, BLOCKED)),
    ("create_note", S.STALE, AUTO, (ALLOWED, ALLOWED, BLOCKED)),
    ("schedule_meeting", S.HOT, AUTO, (DEFER, WARN, BLOCKED)),
    # not covered by any row: strict defers to a human
    ("send_message", S.NURTURE, AUTO, (DEFER, WARN, BLOCKED)),
    ("send_message", S.WON, AUTO, (DEFER, WARN, BLOCKED)),
]


@pytest.mark.parametrize(("action", "state", "origin", "results"), TABLE)
@pytest.mark.parametrize("mode_index", [0, 1, 2], ids=["strict", "permissive", "readonly"])
def test_default_rules_in_each_mode(
    action: str,
    state: CareState,
    origin: str,
    results: tuple[GateResult, GateResult, GateResult],
    mode_index: int,
) -> None:
    mode = (M.STRICT, M.PERMISSIVE, M.READONLY)[mode_index]
    decision = evaluate_policy(ActionRequest(action, origin, state, "lead"), mode=mode)
    assert decision.result is results[mode_index], decision
    assert decision.proceeds is (results[mode_index] in (ALLOWED, WARN))


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Great talking today.\nRegards, John Smith", "impersonates a human"),
        ("Thanks!\nSincerely,\nMary", "impersonates a human"),
        ("This was signed off as Peter Parker", "impersonates a human"),
        ("We guarantee a 20% uplift", "binding commitment"),
        ("we promise to deliver by Friday", "binding commitment"),
        ("This offer is legally binding", "legally binding"),
        ("I can offer a discount of $50", "price concession"),
        ("That is our final price", "price concession"),
        ("We will delete all your data", "data deletion"),
        ("This is a cease and desist notice", "cease and desist"),
        ("We may take legal action", "litigation"),
    ],
)
def test_hard_rules_block_autonomous_text_and_flag_human_text(text: str, label: str) -> None:
    assert any(label in v for v in hard_text_violations(text))
    for mode in M:
        auto = evaluate_policy(ActionRequest("send_message", AUTO, S.HOT, "lead", text), mode=mode)
        assert auto.result is BLOCKED and auto.source in ("hard_rule", "mode")
    human = evaluate_policy(
        ActionRequest("send_message", HUMAN, S.HOT, "lead", text), mode=M.STRICT
    )
    assert human.result is WARN and label.split()[0] in human.reason


@pytest.mark.parametrize(
    "text", ["Regards, AiSHA Assistant", "Best,\nThe Team", "Thanks, C.A.R.E. bot", "Hello"]
)
def test_sign_offs_naming_the_ai_are_not_impersonation(text: str) -> None:
    assert impersonation(text) is None
    decision = evaluate_policy(
        ActionRequest("send_message", AUTO, S.WARM, "lead", text), mode=M.STRICT
    )
    assert decision.result is ALLOWED


@pytest.mark.parametrize(
    "text",
    [
        "We will definitely get this done",
        "I can guarantee it",
        "Happy to negotiate",
        "URGENT reply",
    ],
)
def test_autonomous_text_that_needs_a_human_is_deferred(text: str) -> None:
    action = ActionRequest("send_message", AUTO, S.WARM, "lead", text)
    assert evaluate_policy(action, mode=M.STRICT).result is DEFER
    assert evaluate_policy(action, mode=M.PERMISSIVE).result is WARN
    assert evaluate_policy(action, mode=M.READONLY).result is BLOCKED


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Attached the contract", True),
        ("see our terms", True),
        ("the quote is $12,500", True),
        ("a $10k deal", True),
        ("the quote is $9,999", False),
        ("see you tomorrow", False),
    ],
)
def test_human_text_about_contracts_or_large_amounts_is_flagged(text: str, flagged: bool) -> None:
    decision = evaluate_policy(
        ActionRequest("send_message", HUMAN, S.WARM, "lead", text), mode=M.STRICT
    )
    assert decision.result is (WARN if flagged else ALLOWED)


def test_custom_rules_run_before_the_defaults_but_not_before_hard_rules_or_readonly() -> None:
    tighten = Rule(
        "send_message", frozenset({S.WARM}), AUTO, BLOCKED, "tenant: no auto mail", rule_id="r1"
    )
    loosen = Rule(
        "send_message", frozenset({S.COLD}), AUTO, ALLOWED, "tenant: cold ok", rule_id="r2"
    )
    defer_all = Rule("*", frozenset(S), None, DEFER, "tenant: ask me", rule_id="r3")
    warm = ActionRequest("send_message", AUTO, S.WARM, "lead")
    cold = ActionRequest("send_message", AUTO, S.COLD, "lead")
    assert evaluate_policy(warm, mode=M.STRICT, custom_rules=[tighten]).rule_id == "r1"
    assert evaluate_policy(warm, mode=M.STRICT, custom_rules=[tighten]).result is BLOCKED
    assert evaluate_policy(cold, mode=M.STRICT, custom_rules=[loosen]).result is ALLOWED
    # first matching custom rule wins
    decided = evaluate_policy(cold, mode=M.STRICT, custom_rules=[defer_all, loosen])
    assert (decided.result, decided.source) == (DEFER, "custom")
    # entity type narrows a rule
    only_accounts = Rule("*", frozenset(S), None, BLOCKED, "accounts", entity_type="account")
    assert evaluate_policy(warm, mode=M.STRICT, custom_rules=[only_accounts]).result is ALLOWED
    # readonly and hard rules stay in force
    assert evaluate_policy(cold, mode=M.READONLY, custom_rules=[loosen]).result is BLOCKED
    delete = ActionRequest("delete_entity", AUTO, S.WARM, "lead")
    allow_delete = Rule("delete_entity", frozenset(S), AUTO, ALLOWED, "tenant: deletes ok")
    assert evaluate_policy(delete, mode=M.STRICT, custom_rules=[allow_delete]).result is BLOCKED


def test_origin_comes_from_the_caller_not_from_input() -> None:
    assert classify_origin(object()) == HUMAN
    assert classify_origin(None) == AUTO
