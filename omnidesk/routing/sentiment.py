"""Sentiment per customer message (VADER: an offline lexicon made for social-media text) and its trend.

Pure: no Django. Scores are VADER's compound, -1 (angry) … +1 (happy).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: long mails are scored on their start: the complaint is up front, the quoted history is not
MAX_CHARS = 4000
#: how many of the customer's latest scored messages the trend looks at
TREND_WINDOW = 5
#: slope (compound per message) beyond which the trend is falling / rising
TREND_SLOPE = 0.15

_lock = threading.Lock()
_analyzer: Any = None


def _get() -> Any:
    global _analyzer
    if _analyzer is None:
        with _lock:
            if _analyzer is None:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                _analyzer = SentimentIntensityAnalyzer()
    return _analyzer


def sentiment_score(*, text: str) -> float | None:
    """VADER compound of `text`, rounded to 4 places; None when there is no text to judge."""
    text = (text or "").strip()[:MAX_CHARS]
    if not text:
        return None
    return round(float(_get().polarity_scores(text)["compound"]), 4)


def message_sentiment(*, text: str, automated: bool, is_call: bool) -> float | None:
    """Only what the customer wrote is scored: not auto-replies, not our summaries of phone calls."""
    if automated or is_call:
        return None
    return sentiment_score(text=text)


@dataclass(frozen=True)
class Trend:
    direction: str | None  # falling | rising | steady | None (fewer than two scores)
    slope: float | None
    scores: tuple[float, ...]


def sentiment_trend(scores: Sequence[float], *, threshold: float = TREND_SLOPE) -> Trend:
    """Least-squares slope over the scores, oldest first; two scores are enough to call a direction."""
    ys = [float(s) for s in scores if s is not None and s == s]
    if len(ys) < 2:
        return Trend(None, None, tuple(ys))
    n = len(ys)
    mean_x = (n - 1) / 2
    mean_y = sum(ys) / n
    sxx = sum((i - mean_x) ** 2 for i in range(n))
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(ys)) / sxx
    slope = round(slope, 4)
    direction = "falling" if slope <= -threshold else "rising" if slope >= threshold else "steady"
    return Trend(direction, slope, tuple(ys))
