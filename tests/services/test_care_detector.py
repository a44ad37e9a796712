"""Escalation detection from text and sentiment (guide 13.4; care-facts categories)."""

from __future__ import annotations

from typing import Any

import pytest

from aisha_server.care.detector import (
    COMPLIANCE,
    HIGH_RISK,
    MALFORMED_INPUT,
    NEGATIVE_SENTIMENT,
    OBJECTION,
    PRICING,
    detect_escalation,
    matched_phrases,
    normalise,
)


def detect(text: Any, sentiment: Any = None, threshold: float = 0.5) -> Any:
    return detect_escalation(text, sentiment, threshold=threshold)


@pytest.mark.parametrize(
    ("text", "trigger", "level"),
    [
        ("Please STOP   calling me", OBJECTION, "high"),
        ("I\u2019m not interested, thanks", OBJECTION, "high"),
        ("Don\u2019t contact me again", OBJECTION, "high"),
        ("We will talk to our attorney about this", COMPLIANCE, "high"),
        ("This is a GDPR matter", COMPLIANCE, "high"),
        ("I will sue you", COMPLIANCE, "high"),
        ("What is the price?", PRICING, "medium"),
        ("price, contract and a refund", PRICING, "high"),  # more than two phrases
        ("the price and the contract", PRICING, "medium"),  # exactly two: medium
        ("this is harassment", None, None),  # 'harass' is a whole word only
        ("Stop the harass now", HIGH_RISK, "low"),
        ("That was inappropriate", HIGH_RISK, "low"),
    ],
)
def test_categories_and_confidence(text: str, trigger: str | None, level: str | None) -> None:
    result = detect(text)
    assert result.trigger_type == trigger
    assert result.is_escalation is (trigger is not None)
    assert result.confidence_level == level


@pytest.mark.parametrize(
    "text",
    [
        "We have an issue with the login",  # 'issue' is not 'sue'
        "We will pursue this next week",  # 'pursue' is not 'sue'
        "Please bring a tissue",  # 'tissue' is not 'issue' nor 'sue'
        "The courtyard is lovely",  # 'courtyard' is not 'court'
        "Pricingly speaking it's fine",  # not a word of the list
        "Let's discuss the costume party",  # 'costume' is not 'cost'
    ],
)
def test_whole_words_only(text: str) -> None:
    assert not detect(text).is_escalation


def test_normalises_case_apostrophes_and_whitespace() -> None:
    assert normalise("  Don\u2019t\n\tCALL  ") == "don't call"
    assert matched_phrases("Leave\nme   ALONE", OBJECTION) == ["leave me alone"]


def test_objection_beats_pricing_and_fallback_only_when_nothing_else() -> None:
    assert detect("too expensive, not interested").trigger_type == OBJECTION
    assert detect("threat about the invoice").trigger_type == PRICING


@pytest.mark.parametrize(
    ("sentiment", "threshold", "escalates"),
    [
        (-0.5, 0.5, True),  # at the threshold
        (-0.49, 0.5, False),  # just below
        (-0.9, 0.5, True),  # above
        (-0.45, 0.4, True),  # lower threshold = more sensitive
        (0.8, 0.5, False),  # positive
        ("negative", 0.5, True),
        ("neutral", 0.5, False),
        ("positive", 0.0, False),
    ],
)
def test_sentiment_threshold(sentiment: Any, threshold: float, escalates: bool) -> None:
    result = detect("Thanks for the call", sentiment, threshold)
    assert result.is_escalation is escalates
    if escalates:
        assert result.trigger_type == NEGATIVE_SENTIMENT
        assert result.sentiment == "negative"
        assert 0 < result.confidence <= 1


@pytest.mark.parametrize(
    ("text", "sentiment"), [(42, None), ("fine", 3.0), ("fine", "furious"), ("fine", True)]
)
def test_malformed_input_escalates_with_low_confidence(text: Any, sentiment: Any) -> None:
    result = detect(text, sentiment)
    assert result.is_escalation
    assert result.trigger_type == MALFORMED_INPUT
    assert result.confidence_level == "low"


def test_result_carries_the_guide_fields() -> None:
    result = detect("stop emailing me", -0.9).as_dict()
    assert {"is_escalation", "trigger_type", "reason", "confidence"} <= set(result)
    assert result["matched_phrases"] == ["stop emailing"]
    assert detect("", None).as_dict()["is_escalation"] is False
