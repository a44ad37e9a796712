"""The C.A.R.E. state machine (guide 13.3): every pair of states, allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from aisha_server.care.states import (
    INITIAL_STATE,
    TERMINAL_STATES,
    CareState,
    Signal,
    check_transition,
    parse_state,
    target_for,
)

S = CareState
# the guide's diagram, edge for edge, written out independently of the module's table
DIAGRAM = {
    (S.COLD, S.WARM): Signal.FIRST_CONTACT,
    (S.WARM, S.HOT): Signal.ENGAGEMENT,
    (S.HOT, S.WON): Signal.CONVERSION,
    (S.HOT, S.LOST): Signal.REJECTION,
    (S.WARM, S.NURTURE): Signal.EXTENDED_TIMELINE,
    (S.WARM, S.STALE): Signal.NO_RESPONSE,
    (S.NURTURE, S.WARM): Signal.RE_ENGAGEMENT,
    (S.STALE, S.LOST): Signal.FAILED_RECOVERY,
}
ALL_PAIRS = list(itertools.product(CareState, CareState))


def test_exactly_the_seven_states_of_the_guide() -> None:
    assert {s.value for s in CareState} == {
        "cold", "warm", "hot", "won", "lost", "nurture", "stale"
    }  # fmt: skip
    assert INITIAL_STATE is S.COLD
    assert {S.WON, S.LOST} == TERMINAL_STATES


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=lambda s: str(s))
def test_every_pair_of_states(source: CareState, target: CareState) -> None:
    check = check_transition(source, target)
    expected = DIAGRAM.get((source, target))
    assert check.allowed is (expected is not None), check.reason
    assert check.signal == expected
    if expected is None:
        assert (
            "not a C.A.R.E. transition" in check.reason
            or source in TERMINAL_STATES
            or (source == target)
        )


@pytest.mark.parametrize(("edge", "signal"), list(DIAGRAM.items()))
def test_an_edge_refuses_the_wrong_signal(
    edge: tuple[CareState, CareState], signal: Signal
) -> None:
    source, target = edge
    assert check_transition(source, target, signal).allowed
    for other in Signal:
        if other != signal:
            check = check_transition(source, target, other)
            assert not check.allowed
            assert f"driven by {signal}" in check.reason


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
def test_nothing_leaves_won_or_lost(state: CareState) -> None:
    for target in CareState:
        check = check_transition(state, target)
        assert not check.allowed
        assert "final" in check.reason
    assert all(target_for(state, s) is None for s in Signal)


def test_signal_targets_follow_the_diagram() -> None:
    for (source, target), signal in DIAGRAM.items():
        assert target_for(source, signal) is target
    assert target_for(S.COLD, Signal.NO_RESPONSE) is None  # a cold lead does not go stale
    assert target_for(S.HOT, Signal.ENGAGEMENT) is None


def test_parse_state_is_forgiving_about_case_and_strict_about_names() -> None:
    assert parse_state(" Warm ") is S.WARM
    with pytest.raises(ValueError, match=r"unknown C\.A\.R\.E\. state 'frozen'"):
        parse_state("frozen")
