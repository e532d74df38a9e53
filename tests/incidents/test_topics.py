"""Topics and the spike rule: pure functions, tested exhaustively (hypothesis where it helps)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from omnidesk.incidents.bulk import shorten
from omnidesk.incidents.topics import (
    MAX_TERM_LENGTH,
    MAX_TERMS,
    STOP_WORDS,
    Rule,
    TermRate,
    clusters,
    explained_share,
    is_spike,
    matches,
    sentiment_weight,
    spikes_find,
    stem,
    terms_of,
    title_of,
)


def test_terms_are_words_and_phrases_without_noise() -> None:
    terms = terms_of("@Bank your APP is down again!! can't log in https://t.co/x +44 7700 900123 ada@example.com")
    assert terms == {"app", "down", "log", "app down", "down log"}


def test_stemming_makes_one_word_of_its_forms() -> None:
    assert {stem(w) for w in ("crash", "crashes", "crashed", "crashing")} == {"crash"}
    assert {stem(w) for w in ("charge", "charged", "charging")} == {"charge"}
    assert {stem(w) for w in ("log", "logs", "logged", "logging")} == {"log"}
    assert stem("status") == "status" and stem("miss") == stem("missed") == "miss"


def test_a_long_mail_counts_no_more_than_a_tweet() -> None:
    text = " ".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(500))
    assert len(terms_of(text)) <= MAX_TERMS


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_terms_of_any_text_are_bounded_and_stable(text: str) -> None:
    terms = terms_of(text)
    assert terms == terms_of(text) == terms_of(text.lower())
    assert len(terms) <= MAX_TERMS
    for term in terms:
        assert 0 < len(term) <= MAX_TERM_LENGTH and term == term.strip()
        assert all(word not in STOP_WORDS for word in term.split())


def test_matching_needs_a_phrase_or_two_words() -> None:
    signature = ["app", "login", "crash", "app login"]
    assert matches(signature, terms_of("app login broken"))
    assert matches(signature, terms_of("the app crashes"))
    assert not matches(signature, terms_of("I love the new app design"))
    assert matches(["outage"], terms_of("is there an outage?"))
    assert not matches([], {"app"}) and not matches(["app"], set())


def test_the_spike_rule_needs_the_factor_and_the_minimum() -> None:
    rule = Rule(factor=3.0, min_count=10)
    assert is_spike(TermRate("app", 10, 10.0, 3.3), rule)
    assert not is_spike(TermRate("app", 10, 10.0, 3.34), rule)  # 10 < 3 × 3.34
    assert not is_spike(TermRate("app", 9, 50.0, 0.0), rule)  # too few messages, however new the word
    assert TermRate("app", 10, 10.0, 0.0).ratio is None and TermRate("app", 10, 10.0, 2.0).ratio == 5.0


@given(
    count=st.integers(0, 500), weight=st.floats(0, 1000, allow_nan=False), baseline=st.floats(0, 100, allow_nan=False),
    factor=st.floats(1, 10, allow_nan=False), min_count=st.integers(1, 50), more=st.integers(0, 50),
)
def test_a_spike_stays_a_spike_with_more_messages(count, weight, baseline, factor, min_count, more) -> None:  # type: ignore[no-untyped-def]
    rule = Rule(factor=factor, min_count=min_count)
    rate = TermRate("t", count, weight, baseline)
    if is_spike(rate, rule):
        assert count >= min_count and weight >= factor * baseline
        assert is_spike(TermRate("t", count + more, weight + more, baseline), rule)


def test_spikes_are_ordered_by_weight_then_term() -> None:
    current = {"b": (12, 12.0), "a": (12, 12.0), "c": (30, 40.0), "d": (11, 11.0)}
    found = spikes_find(current, {"d": 5.0}, Rule())
    assert [s.term for s in found] == ["c", "a", "b"]


def test_sentiment_weights_angry_messages_more() -> None:
    assert sentiment_weight(-1.0) == 1.5 and sentiment_weight(None) == 1.0 and sentiment_weight(1.0) == 0.5
    assert sentiment_weight(-7.0) == 1.5 and sentiment_weight(float("nan")) == 1.0


def test_clusters_keep_words_of_other_problems_and_boilerplate_out() -> None:
    docs = [terms_of(t) for t in ["app login broken"] * 8 + ["app crashes on login"] * 6 + ["card declined"] * 9]
    # 9 of the 10 calls holding "caller" are about the app: pure enough, but the phone's own words
    docs += [terms_of("caller reports: app login broken")] * 9 + [terms_of("caller reports: where is my card")]
    channels = ["x"] * 8 + ["email"] * 6 + ["facebook"] * 9 + ["phone"] * 10
    spiking = ["app", "login", "card", "declin", "caller", "crash"]
    groups = clusters(spiking, docs, channels=channels)
    assert groups[0] == ("app", "login", "crash")  # "crash" is said on email only, but only about the app
    assert ("card", "declin") in groups
    assert not any("caller" in g and "app" in g for g in groups)
    assert "caller" in clusters(spiking, docs)[0]  # without channels it could not tell


def test_a_term_explained_by_an_open_incident_is_no_new_problem() -> None:
    docs = [terms_of("caller reports app login broken")] * 6 + [terms_of("caller reports parcel late")] * 2
    assert explained_share("caller", docs, [["app", "login"]]) == 0.75
    assert explained_share("caller", docs, []) == 0.0


def test_titles_read_like_the_problem() -> None:
    assert title_of(("app", "login", "app login", "crash")) == "app login, crash"
    assert title_of(("outage",)) == "outage"


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=600), limit=st.integers(2, 300))
def test_shorten_always_fits_and_keeps_the_start(text: str, limit: int) -> None:
    short = shorten(text, measure=len, limit=limit)
    assert len(short) <= limit
    if len(text) <= limit:
        assert short == text
    else:
        assert short.endswith("…") and text.startswith(short[:-1].rstrip()[:1])


def test_a_usual_topic_sharing_the_leading_word_stays_out() -> None:
    docs = [terms_of("app login broken")] * 10 + [terms_of("I love the new app design")] * 10
    lifts = {"app": 8.0, "login": float("inf"), "design": 2.0, "love": 2.0}
    assert clusters(["app", "login", "design", "love"], docs, lifts=lifts)[0] == ("app", "login")
    assert "design" in clusters(["app", "login", "design", "love"], docs)[0]  # without lifts it could not tell


def test_one_problem_in_other_words_is_one_group_but_a_usual_topic_is_not() -> None:
    from omnidesk.incidents.topics import clusters_merge

    docs = [terms_of("app is down, can't log in")] * 10 + [terms_of("app login fails")] * 10
    docs += [terms_of("I love the new app design")] * 10
    inf = float("inf")
    groups = [("down log", "down", "log"), ("login", "fail"), ("design", "love")]
    merged = clusters_merge(groups, docs, lifts={"down log": inf, "login": inf, "design": 3.0})
    assert merged == [("down log", "down", "log", "login", "fail", "app"), ("design", "love")]
    assert not matches(merged[0], terms_of("I love the new app design"))
    assert matches(merged[0], terms_of("the app fails"))
