"""Topics of customer messages and the spike rule. Pure: no Django, so it is tested exhaustively.

A message becomes a set of terms: its words (lower-cased, lightly stemmed, stop-words, numbers,
links, mentions and addresses out) and the phrases of two neighbouring words. Counts of terms per
time bucket are kept by the detector; here is only the arithmetic on them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: a long mail is judged on its start: the complaint is up front, quoted history is not
MAX_CHARS = 1000
#: terms kept per message, so one long mail cannot weigh more than a tweet
MAX_TERMS = 40
MAX_TERM_LENGTH = 100

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
    during each few for from further get got had hadn't has hasn't have haven't having he her here hers
    herself him himself his how i i'm i've if in into is isn't it it's its itself just let's me more most
    mustn't my myself no nor not now of off on once only or other ought our ours ourselves out over own same
    shan't she should shouldn't so some such than that that's the their theirs them themselves then there
    there's these they they're this those through to too under until up very was wasn't we we're we've
    were weren't what what's when where where's which while who who's whom why will with won't would
    wouldn't you you're you've your yours yourself yourselves
    hi hello hey dear thanks thank please pls plz regards cheers ok okay yes yeah still again today
    just really anyone someone something anything one im ive dont cant wont isnt doesnt didnt
    re fw fwd sent via
    """.split()
)
# "down" is a stop word in most lists but it is THE word of an outage: keep it.
STOP_WORDS = STOP_WORDS - {"down", "not"}

_NOISE = re.compile(
    r"https?://\S+|www\.\S+|\S+@\S+\.\S+|(?<!\w)[@#]\w+|\+?\d[\d\s().-]{5,}\d",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z][a-z']*[a-z]|[a-z]")


def stem(word: str) -> str:
    """A deliberately light suffix stripper: crashes/crashed/crashing → crash, apps → app."""
    w = word.strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.replace("'", "")
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    for suffix, shortest in (("ing", 6), ("ed", 5)):
        if len(w) >= shortest and w.endswith(suffix):
            w = w[: -len(suffix)]
            if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "ls":  # logging → logg → log
                return w[:-1]
            if w[-1] in "cgvz" or (w[-1] == "s" and not w.endswith("ss")):  # charged → charg → charge
                return w + "e"
            return w
    if len(w) > 4 and w.endswith(("ches", "shes", "sses", "xes")):  # crashes → crash
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def words_of(text: str) -> list[str]:
    """The meaningful words of a text, in order, stemmed."""
    cleaned = _NOISE.sub(" ", (text or "")[:MAX_CHARS].lower().replace("’", "'"))
    out = []
    for raw in _WORD.findall(cleaned):
        if raw in STOP_WORDS:
            continue
        word = stem(raw)
        if len(word) < 2 or word in STOP_WORDS:
            continue
        out.append(word[:MAX_TERM_LENGTH])
    return out


def terms_of(text: str) -> frozenset[str]:
    """Words and two-word phrases of a message, at most MAX_TERMS (words first)."""
    words = words_of(text)
    unique_words = list(dict.fromkeys(words))
    phrases = list(dict.fromkeys(f"{a} {b}" for a, b in zip(words, words[1:]) if a != b))
    kept = unique_words[:MAX_TERMS]
    kept += [p for p in phrases if len(p) <= MAX_TERM_LENGTH][: max(0, MAX_TERMS - len(kept))]
    return frozenset(kept)


def sentiment_weight(sentiment: float | None) -> float:
    """How much one message counts: an angry one (-1) 1.5, a neutral or unscored one 1, a happy one (+1) 0.5."""
    if sentiment is None or sentiment != sentiment:
        return 1.0
    return 1.0 - 0.5 * max(-1.0, min(1.0, float(sentiment)))


def is_phrase(term: str) -> bool:
    return " " in term


class Signature:
    """An incident's terms, split once into phrases and words, to test many messages against."""

    __slots__ = ("phrases", "words", "needed")

    def __init__(self, terms: Iterable[str]) -> None:
        sig = frozenset(terms)
        self.phrases = frozenset(t for t in sig if is_phrase(t))
        self.words = sig - self.phrases
        self.needed = 1 if len(self.words) == 1 else 2

    def matches(self, terms: Iterable[str]) -> bool:
        """One shared phrase is enough; otherwise two shared words, or the one word of a one-word signature.

        A lone common word ("app") never links a message to an incident about "app login".
        """
        have = terms if isinstance(terms, (set, frozenset)) else frozenset(terms)
        if not have or not (self.phrases or self.words):
            return False
        if not self.phrases.isdisjoint(have):
            return True
        return len(self.words & have) >= self.needed


def matches(signature: Iterable[str], terms: Iterable[str]) -> bool:
    """Does a message (its terms) belong to an incident (its signature)? See `Signature.matches`."""
    return Signature(signature).matches(terms)


@dataclass(frozen=True)
class Rule:
    #: the current window must exceed the baseline by this factor
    factor: float = 3.0
    #: and hold at least this many messages
    min_count: int = 10


@dataclass(frozen=True)
class TermRate:
    term: str
    #: messages with the term in the current window
    count: int
    #: the same, sentiment-weighted
    weight: float
    #: sentiment-weighted messages per window over the baseline period
    baseline: float

    @property
    def ratio(self) -> float | None:
        return None if self.baseline <= 0 else self.weight / self.baseline


def is_spike(rate: TermRate, rule: Rule) -> bool:
    return rate.count >= rule.min_count and rate.weight > 0 and rate.weight >= rule.factor * rate.baseline


def spikes_find(
    current: Mapping[str, tuple[int, float]], baseline: Mapping[str, float], rule: Rule
) -> list[TermRate]:
    """Terms whose current window is a spike, most weighted first (ties: alphabetical, so stable)."""
    rates = [
        TermRate(term=t, count=int(n), weight=float(w), baseline=float(baseline.get(t, 0.0)))
        for t, (n, w) in current.items()
    ]
    return sorted((r for r in rates if is_spike(r, rule)), key=lambda r: (-r.weight, r.term))


def _holders(terms: Iterable[str], docs: Sequence[frozenset[str]]) -> dict[str, set[int]]:
    holders: dict[str, set[int]] = {t: set() for t in terms}
    for i, doc in enumerate(docs):
        for t in doc:
            if t in holders:
                holders[t].add(i)
    return holders


#: a term this concentrated on one channel, in a cluster whose lead is not, is that channel's boilerplate
BOILERPLATE_SHARE = 0.9
SPREAD_LEAD_SHARE = 0.6
#: a term this pure (its messages hold the lead) is the problem's own word, whatever channel says it
PURE = 0.95


def _top_share(ids: set[int], channels: Sequence[str]) -> float:
    if not ids:
        return 0.0
    counts: dict[str, int] = {}
    for i in ids:
        counts[channels[i]] = counts.get(channels[i], 0) + 1
    return max(counts.values()) / len(ids)


def clusters(
    spiking: Sequence[str], docs: Sequence[frozenset[str]], *, channels: Sequence[str] | None = None,
    lifts: Mapping[str, float] | None = None, purity: float = 0.8, lift_share: float = 0.5,
) -> list[tuple[str, ...]]:
    """Group spiking terms that describe one problem, leading term first.

    The leading (most weighted) spiking term takes every other spiking term whose messages mostly
    (`purity`) also hold the lead; the rest form further groups the same way. A term said by many
    messages that are NOT about the lead stays out, so it can never link ordinary messages. With
    `channels` (one per doc): when the lead is said on several channels, a term said almost only on
    one and also in that channel's other messages (a phone system's "caller reports", a mail
    client's signature) is that channel's boilerplate, busy because the channel is: it stays out too.
    With `lifts` (current ÷ baseline, inf for a new term): a term that rose less than `lift_share` of
    the lead's rise is a usual topic that happens to share the lead's word ("love the new app design"
    while the app is down), and stays out. Terms no message in `docs` holds are left out.
    """
    holders = _holders(spiking, docs)
    left = [t for t in spiking if holders[t]]
    out = []
    while left:
        lead, group = left[0], [left[0]]
        spread = channels is not None and _top_share(holders[lead], channels) < SPREAD_LEAD_SHARE
        for t in left[1:]:
            share = len(holders[t] & holders[lead]) / len(holders[t])
            if share < purity:
                continue
            if lifts is not None and lifts.get(t, math.inf) < lift_share * lifts.get(lead, math.inf):
                continue
            # one channel's words, said in that channel's other messages too: its boilerplate
            if spread and share < PURE and _top_share(holders[t], channels) >= BOILERPLATE_SHARE:  # type: ignore[arg-type]
                continue
            group.append(t)
        out.append(tuple(group))
        left = [t for t in left if t not in group]
    return out


def _anchors(group: Sequence[str], docs: Sequence[frozenset[str]], share: float) -> set[str]:
    """Words most (`share`) of a group's messages say, spiking or not."""
    signature = Signature(group)
    mine = [d for d in docs if signature.matches(d)]
    counts: dict[str, int] = {}
    for doc in mine:
        for t in doc:
            if not is_phrase(t):
                counts[t] = counts.get(t, 0) + 1
    return {t for t, n in counts.items() if mine and n >= share * len(mine)}


def clusters_merge(
    groups: Sequence[tuple[str, ...]], docs: Sequence[frozenset[str]], *, lifts: Mapping[str, float] | None = None,
    share: float = 0.8, lift_share: float = 0.5,
) -> list[tuple[str, ...]]:
    """Join groups that name one problem in other words ("can't log in", "login fails").

    Such groups share an anchor: a word most messages of both say ("app"), often too common to spike
    itself. Two groups with a common anchor and a comparable rise (both new words, or lifts within
    `lift_share` of each other) become one, the anchor added to its terms. A usual topic that shares
    the word ("love the new app design"), having risen far less, stays apart.
    """
    def lift(group: tuple[str, ...]) -> float:
        return (lifts or {}).get(group[0], math.inf)

    def comparable(a: float, b: float) -> bool:
        lo, hi = sorted((a, b))
        return lo == hi or (not math.isinf(hi) and lo >= lift_share * hi)

    merged: list[tuple[tuple[str, ...], set[str]]] = []
    for group in groups:
        anchors = _anchors(group, docs, share)
        for i, (into, into_anchors) in enumerate(merged):
            common = anchors & into_anchors
            if common and comparable(lift(group), lift(into)):
                terms = tuple(dict.fromkeys(into + group + tuple(sorted(common))))
                merged[i] = (terms, common)
                break
        else:
            merged.append((group, anchors))
    return [terms for terms, _ in merged]


def explained_share(lead: str, docs: Sequence[frozenset[str]], signatures: Sequence[Sequence[str]]) -> float:
    """Of the messages holding `lead`, the share an existing incident already accounts for.

    A term that spikes only because an incident's messages say it too (boilerplate of a channel that
    is busy because of the incident) is not a new problem.
    """
    holding = [d for d in docs if lead in d]
    if not holding or not signatures:
        return 0.0
    sigs = [Signature(sig) for sig in signatures]
    return sum(1 for d in holding if any(sig.matches(d) for sig in sigs)) / len(holding)


def title_of(signature: Sequence[str]) -> str:
    """A readable name for a detected incident: its leading phrase, else its leading words."""
    phrases = [t for t in signature if is_phrase(t)]
    words = [t for t in signature if not is_phrase(t)]
    head = phrases[:1] + [w for w in words if not any(w in p.split() for p in phrases[:1])][:2]
    return ", ".join(head or list(signature[:3]))
