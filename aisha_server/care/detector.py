"""Escalation detection from communication text and sentiment (guide 13.4, call flow source).

Phrases match as whole words and phrases after normalising case, apostrophes and whitespace:
"issue" does not match "sue", "tissue" does not match "issue" (care-facts: the original's
substring matching did).  Categories and confidence follow the original detector:

* objection or compliance-sensitive phrase -> high confidence;
* pricing/contract phrases -> high when more than two matched, else medium;
* high-risk fallback words (only when nothing above matched) -> low;
* malformed input (sentiment out of range or of the wrong type) -> escalated, low (fail safe).

Sentiment is a score in [-1.0, 1.0] (negative = unhappy) or a label ("negative", "neutral",
"positive").  Its negativity (-score; "negative" = 1.0) at or above
`CARE_SENTIMENT_THRESHOLD` escalates as `negative_sentiment`: a lower threshold is more
sensitive, as the guide says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

OBJECTION: Final = "objection"
PRICING: Final = "pricing_or_contract"
COMPLIANCE: Final = "compliance_sensitive"
HIGH_RISK: Final = "high_risk"
NEGATIVE_SENTIMENT: Final = "negative_sentiment"
MALFORMED_INPUT: Final = "malformed_input"

# scheduled checks (guide 13.4 "AI Trigger Escalations")
LEAD_STAGNANT: Final = "lead_stagnant"
DEAL_DECAY: Final = "deal_decay"
ACTIVITY_OVERDUE: Final = "activity_overdue"
OPPORTUNITY_HOT: Final = "opportunity_hot"
SCHEDULED_TRIGGERS: Final = (LEAD_STAGNANT, DEAL_DECAY, ACTIVITY_OVERDUE, OPPORTUNITY_HOT)

CONFIDENCE: Final = {"high": 0.9, "medium": 0.6, "low": 0.3}

PHRASES: Final[dict[str, tuple[str, ...]]] = {
    OBJECTION: (
        "not interested", "stop calling", "stop contacting", "stop emailing", "unsubscribe",
        "leave me alone", "don't call", "don't contact", "don't email", "remove me",
        "take me off", "opt out", "no thanks", "not now",
    ),
    PRICING: (
        "price", "pricing", "cost", "expensive", "too much", "premium", "contract",
        "agreement", "terms", "cancel", "cancellation", "refund", "money back", "payment",
        "billing", "invoice", "discount", "negotiate", "negotiation",
    ),
    COMPLIANCE: (
        "hipaa", "gdpr", "ssn", "social security", "lawsuit", "attorney", "lawyer",
        "legal action", "complaint", "fraud", "scam", "illegal", "violation", "regulation",
        "privacy breach", "data breach", "sue", "court",
    ),
    HIGH_RISK: ("threat", "harass", "abuse", "report you", "unethical", "inappropriate"),
}  # fmt: skip

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, one kind of apostrophe, single spaces."""
    return _SPACES.sub(" ", text.translate(_APOSTROPHES).lower()).strip()


def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    # longest first so "legal action" wins over shorter overlaps; \w boundaries on both ends
    ordered = sorted(phrases, key=len, reverse=True)
    body = "|".join(re.escape(p).replace(r"\ ", " ") for p in ordered)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)")


_PATTERNS: Final = {category: _pattern(phrases) for category, phrases in PHRASES.items()}


def matched_phrases(text: str, category: str) -> list[str]:
    """The distinct phrases of one category found in `text` (whole words/phrases only)."""
    found: list[str] = []
    for match in _PATTERNS[category].finditer(normalise(text)):
        if match.group(0) not in found:
            found.append(match.group(0))
    return found


@dataclass(frozen=True, slots=True)
class Escalation:
    """What the detector found: the fields of the guide's result object."""

    is_escalation: bool
    trigger_type: str | None
    reason: str
    confidence: float
    confidence_level: str | None = None
    sentiment: str | None = None
    matched: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "is_escalation": self.is_escalation,
            "trigger_type": self.trigger_type,
            "reason": self.reason,
            "confidence": self.confidence,
            "confidence_level": self.confidence_level,
            "sentiment": self.sentiment,
            "matched_phrases": list(self.matched),
            "meta": dict(self.meta),
        }


NO_ESCALATION: Final = Escalation(False, None, "no escalation signal", 0.0)


def _escalation(trigger: str, level: str, reason: str, **extra: Any) -> Escalation:
    return Escalation(True, trigger, reason, CONFIDENCE[level], level, **extra)


def _negativity(sentiment: Any) -> float | None:
    """-score of a numeric sentiment, 1/0 for labels; None when absent; ValueError if bad."""
    if sentiment is None:
        return None
    if isinstance(sentiment, bool):
        raise ValueError("sentiment must be a number in [-1, 1] or a label")
    if isinstance(sentiment, int | float):
        if not -1.0 <= float(sentiment) <= 1.0:
            raise ValueError("sentiment must be within [-1, 1]")
        return max(0.0, -float(sentiment))
    if isinstance(sentiment, str):
        label = sentiment.strip().lower()
        if label in ("negative", "neutral", "positive"):
            return 1.0 if label == "negative" else 0.0
    raise ValueError("sentiment must be a number in [-1, 1] or negative/neutral/positive")


def detect_escalation(text: Any, sentiment: Any = None, *, threshold: float) -> Escalation:
    """Escalation from a communication's text and sentiment score."""
    if text is not None and not isinstance(text, str):
        return _escalation(MALFORMED_INPUT, "low", "Malformed input: text is not a string")
    try:
        negativity = _negativity(sentiment)
    except ValueError as exc:
        return _escalation(MALFORMED_INPUT, "low", f"Malformed input: {exc}")
    body = text or ""
    # at or above the threshold, and negative at all (a threshold of 0 is not "everything")
    negative = negativity is not None and negativity > 0 and negativity >= threshold
    sentiment_label = None
    if negativity is not None:
        sentiment_label = "negative" if negative else "not_negative"

    for category, label in ((OBJECTION, "objection"), (COMPLIANCE, "compliance-sensitive")):
        found = matched_phrases(body, category)
        if found:
            return _escalation(
                category,
                "high",
                f"Customer {label} language: {', '.join(found)}",
                sentiment=sentiment_label,
                matched=tuple(found),
            )
    pricing = matched_phrases(body, PRICING)
    if pricing:
        return _escalation(
            PRICING,
            "high" if len(pricing) > 2 else "medium",
            f"Pricing or contract discussion: {', '.join(pricing)}",
            sentiment=sentiment_label,
            matched=tuple(pricing),
        )
    if negative and negativity is not None:
        level = "high" if negativity >= 0.8 else "medium"
        return Escalation(
            True,
            NEGATIVE_SENTIMENT,
            f"Negative sentiment {negativity:.2f} at or above threshold {threshold:.2f}",
            round(negativity, 4),
            level,
            sentiment="negative",
            meta={"negativity": negativity, "threshold": threshold},
        )
    risky = matched_phrases(body, HIGH_RISK)
    if risky:
        return _escalation(
            HIGH_RISK,
            "low",
            f"High-risk language: {', '.join(risky)}",
            sentiment=sentiment_label,
            matched=tuple(risky),
        )
    return Escalation(False, None, "no escalation signal", 0.0, sentiment=sentiment_label)
