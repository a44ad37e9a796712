"""The C.A.R.E. state machine (guide 13.3): seven states and the transitions of the guide's
state diagram, and no others.

Each allowed transition is driven by one named signal (docs/care.md lists them); anything
else is refused.  This module only decides; `services/care.py` stores and audits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class CareState(enum.StrEnum):
    COLD = "cold"
    WARM = "warm"
    HOT = "hot"
    WON = "won"
    LOST = "lost"
    NURTURE = "nurture"
    STALE = "stale"


class Signal(enum.StrEnum):
    """What moves a relationship from one state to the next (the diagram's edge labels)."""

    FIRST_CONTACT = "first_contact"
    ENGAGEMENT = "engagement"
    CONVERSION = "conversion"
    REJECTION = "rejection"
    EXTENDED_TIMELINE = "extended_timeline"
    NO_RESPONSE = "no_response"
    RE_ENGAGEMENT = "re_engagement"
    FAILED_RECOVERY = "failed_recovery"


INITIAL_STATE: Final = CareState.COLD
# `won --> [*]` and `lost --> [*]`: nothing leaves them
TERMINAL_STATES: Final = frozenset({CareState.WON, CareState.LOST})

# (from, to) -> the signal that drives it; exactly the edges of the guide's diagram
TRANSITIONS: Final[dict[tuple[CareState, CareState], Signal]] = {
    (CareState.COLD, CareState.WARM): Signal.FIRST_CONTACT,
    (CareState.WARM, CareState.HOT): Signal.ENGAGEMENT,
    (CareState.HOT, CareState.WON): Signal.CONVERSION,
    (CareState.HOT, CareState.LOST): Signal.REJECTION,
    (CareState.WARM, CareState.NURTURE): Signal.EXTENDED_TIMELINE,
    (CareState.WARM, CareState.STALE): Signal.NO_RESPONSE,
    (CareState.NURTURE, CareState.WARM): Signal.RE_ENGAGEMENT,
    (CareState.STALE, CareState.LOST): Signal.FAILED_RECOVERY,
}

# the entities that carry a C.A.R.E. state (guide 13.3 `entity_type` comment)
ENTITY_TYPES: Final = ("lead", "contact", "account", "opportunity")


@dataclass(frozen=True, slots=True)
class TransitionCheck:
    allowed: bool
    from_state: CareState
    to_state: CareState
    signal: Signal | None
    reason: str


def parse_state(value: str) -> CareState:
    try:
        return CareState(value.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in CareState)
        raise ValueError(f"unknown C.A.R.E. state {value!r}; one of: {names}") from None


def check_transition(
    from_state: CareState, to_state: CareState, signal: Signal | None = None
) -> TransitionCheck:
    """Whether `from_state -> to_state` is an edge of the diagram (and, when a signal is
    named, whether it is that edge's signal)."""
    expected = TRANSITIONS.get((from_state, to_state))
    if expected is None:
        if from_state in TERMINAL_STATES:
            why = f"{from_state} is final: no transition leaves it"
        elif from_state == to_state:
            why = f"already {to_state}"
        else:
            why = f"{from_state} -> {to_state} is not a C.A.R.E. transition"
        return TransitionCheck(False, from_state, to_state, None, why)
    if signal is not None and signal != expected:
        return TransitionCheck(
            False,
            from_state,
            to_state,
            signal,
            f"{from_state} -> {to_state} is driven by {expected}, not {signal}",
        )
    return TransitionCheck(True, from_state, to_state, expected, f"{from_state} -> {to_state}")


def target_for(from_state: CareState, signal: Signal) -> CareState | None:
    """The state a signal leads to from `from_state`, or None when it leads nowhere."""
    for (source, target), driven_by in TRANSITIONS.items():
        if source == from_state and driven_by == signal:
            return target
    return None
