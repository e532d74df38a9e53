"""Assembling the parity report: figures per channel and pooled, gaps vs the best channel and the pool."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .metrics import POOLED, QUANTILES, Raw, Scope, figures_compute
from .stats import GapRule, Significance, gap_assess, mann_whitney_counts, sample_wording, two_proportion_z, wilson_interval


@dataclass(frozen=True)
class Compared:
    """A metric that parity compares between channels."""

    key: str
    label: str
    direction: str  # "higher_is_better" | "lower_is_better"
    kind: str  # "proportion" | "time"


COMPARED = (
    Compared("share_answered", "Share answered", "higher_is_better", "proportion"),
    Compared("sla_first_response", "First-response SLA attainment", "higher_is_better", "proportion"),
    Compared("sla_resolution", "Resolution SLA attainment", "higher_is_better", "proportion"),
    Compared("reopen_rate", "Reopen rate", "lower_is_better", "proportion"),
    Compared("first_response", "First response p50 (calendar)", "lower_is_better", "time"),
    Compared("first_response_business", "First response p50 (business)", "lower_is_better", "time"),
    Compared("next_response", "Next response p50", "lower_is_better", "time"),
    Compared("resolution", "Resolution p50", "lower_is_better", "time"),
)

#: proportion metrics: (successes, n) of a Raw
_PROPORTIONS = {
    "share_answered": lambda r: (r.answered, r.volume),
    "sla_first_response": lambda r: (r.fr_met, r.fr_decided),
    "sla_resolution": lambda r: (r.res_met, r.res_decided),
    "reopen_rate": lambda r: (r.reopened, r.volume),
    "handoff_share": lambda r: (r.handed_off, r.public_first),
}


def _proportion(raw: Raw, key: str) -> dict[str, Any]:
    x, n = _PROPORTIONS[key](raw)
    ci = wilson_interval(x, n)
    return {
        "value": x / n if n else None, "x": x, "n": n,
        "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
    }


def _channel_block(channel: str, raw: Raw, rule: GapRule) -> dict[str, Any]:
    block: dict[str, Any] = {"channel": channel, "volume": raw.volume}
    for key in _PROPORTIONS:
        block[key] = _proportion(raw, key)
    block["transfers_per_ticket"] = {
        "value": raw.transfers / raw.volume if raw.volume else None, "transfers": raw.transfers, "n": raw.volume,
    }
    for metric in QUANTILES:
        block[metric] = {**raw.pct[metric], "n": raw.n[metric]}
    block["sample"] = sample_wording(raw.volume, rule.min_n)
    return block


def _value(block: dict[str, Any], c: Compared) -> tuple[float | None, int]:
    fig = block[c.key]
    return (fig["value"] if c.kind == "proportion" else fig["p50"]), fig["n"]


def _test(c: Compared, a: Raw, b_x: int, b_n: int, b_hist: dict[int, int] | None) -> Significance | None:
    if c.kind == "proportion":
        x, n = _PROPORTIONS[c.key](a)
        return two_proportion_z(x, n, b_x, b_n)
    return mann_whitney_counts(a.hist[c.key], b_hist or {})


def _rest(pool: Raw, raw: Raw, c: Compared) -> tuple[int, int, dict[int, int] | None]:
    """The pool without the channel: what 'vs the pool' is tested against."""
    if c.kind == "proportion":
        px, pn = _PROPORTIONS[c.key](pool)
        x, n = _PROPORTIONS[c.key](raw)
        return px - x, pn - n, None
    hist = {k: v - raw.hist[c.key].get(k, 0) for k, v in pool.hist[c.key].items()}
    return 0, 0, {k: v for k, v in hist.items() if v > 0}


def parity_report(*, scope: Scope, rule: GapRule | None = None, resolution_s: int = 60, portable: bool | None = None) -> dict[str, Any]:
    """The whole report as plain data (JSON-ready): channels, pooled, best channel per metric, flags."""
    rule = rule or GapRule()
    raws = figures_compute(scope=scope, resolution_s=resolution_s, portable=portable)
    pool = raws[POOLED]
    channels = sorted(k for k in raws if k != POOLED and raws[k].volume > 0)
    blocks = {ch: _channel_block(ch, raws[ch], rule) for ch in channels}
    pooled = _channel_block(POOLED, pool, rule)

    best: dict[str, str | None] = {}
    for c in COMPARED:
        eligible = [(ch, *_value(blocks[ch], c)) for ch in channels]
        eligible = [(ch, v, n) for ch, v, n in eligible if v is not None and n >= rule.min_n]
        sign = -1 if c.direction == "higher_is_better" else 1
        best[c.key] = min(eligible, key=lambda e: (sign * e[1], e[0]))[0] if eligible else None

    flags: list[dict[str, Any]] = []
    for ch in channels:
        block = blocks[ch]
        block["parity"] = {}
        for c in COMPARED:
            value, n = _value(block, c)
            entry: dict[str, Any] = {}
            ref_ch = best[c.key]
            if ref_ch == ch:
                entry["vs_best"] = {"verdict": "reference", "against": ch, "n": n}
            elif ref_ch is None:
                entry["vs_best"] = {**asdict(gap_assess(
                    value=value, reference=None, n=n, n_reference=0, direction=c.direction,  # type: ignore[arg-type]
                    test=None, rule=rule,
                )), "against": None}
                if n and n < rule.min_n:
                    entry["vs_best"]["verdict"] = "small_sample"
            else:
                ref_value, ref_n = _value(blocks[ref_ch], c)
                other = raws[ref_ch]
                bx, bn = _PROPORTIONS[c.key](other) if c.kind == "proportion" else (0, 0)
                test = _test(c, raws[ch], bx, bn, other.hist.get(c.key))
                entry["vs_best"] = {**asdict(gap_assess(
                    value=value, reference=ref_value, n=n, n_reference=ref_n, direction=c.direction,  # type: ignore[arg-type]
                    test=test, rule=rule,
                )), "against": ref_ch}
            rx, rn, rhist = _rest(pool, raws[ch], c)
            pool_value, pool_n = _value(pooled, c)
            test = _test(c, raws[ch], rx, rn, rhist)
            entry["vs_pool"] = {**asdict(gap_assess(
                value=value, reference=pool_value, n=n, n_reference=pool_n, direction=c.direction,  # type: ignore[arg-type]
                test=test, rule=rule,
            )), "against": POOLED}
            for against, gap in entry.items():
                gap["label"] = c.label
                if gap["verdict"] == "gap":
                    flags.append({
                        "channel": ch, "metric": c.key, "label": c.label, "against": gap["against"],
                        "comparison": against, "value": gap["value"], "reference": gap["reference"],
                        "relative": gap["relative"], "p_value": gap["p_value"], "n": gap["n"],
                        "n_reference": gap["n_reference"],
                    })
            block["parity"][c.key] = entry

    return {
        "scope": {
            "since": scope.since.isoformat(), "until": scope.until.isoformat(),
            "groups": sorted(scope.group_ids) if scope.group_ids is not None else None,
        },
        "rule": {"materiality": rule.materiality, "alpha": rule.alpha, "min_n": rule.min_n, "rank_resolution_s": resolution_s},
        "channels": [blocks[ch] for ch in channels],
        "pooled": pooled,
        "best": best,
        "flags": flags,
    }


def rule_from(*, materiality: str | float | None = None, alpha: str | float | None = None,
              min_n: str | int | None = None) -> GapRule:
    """The gap rule: explicit values, else settings.OMNIDESK PARITY_MATERIALITY / _ALPHA / _MIN_N, else defaults."""
    from django.conf import settings

    conf = getattr(settings, "OMNIDESK", {})
    base = GapRule()
    try:
        rule = GapRule(
            materiality=float(materiality if materiality not in (None, "") else conf.get("PARITY_MATERIALITY", base.materiality)),
            alpha=float(alpha if alpha not in (None, "") else conf.get("PARITY_ALPHA", base.alpha)),
            min_n=int(min_n if min_n not in (None, "") else conf.get("PARITY_MIN_N", base.min_n)),
        )
    except (TypeError, ValueError):
        raise ValueError("materiality and alpha must be numbers, min_n a whole number") from None
    if not (0 <= rule.materiality and 0 < rule.alpha < 1 and rule.min_n >= 1):
        raise ValueError("materiality must be ≥ 0, alpha within (0, 1), min_n ≥ 1")
    return rule
