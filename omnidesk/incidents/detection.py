"""The periodic detector: new customer messages → term counts → spikes → incidents.

Incremental: each run reads only the messages after its cursor (by id), adds their terms to
per-(term, bucket) counts, and compares the current window with the baseline of the few terms
that reach the minimum count. Nothing ever rescans the messages table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from omnidesk.tickets.models import Message

from . import topics
from .linking import (
    OPEN,
    Found,
    changed_on_commit,
    detector_lock,
    incident_open,
    incidents_link_new,
    recent_found,
    recent_since,
)
from .models import Incident, RecentMessage, TermCount

#: messages read per transaction, and transactions per run (a backlog is worked off over runs)
BATCH = 2000
MAX_BATCHES = 50
#: messages younger than this are left to the next run: a slower transaction may still commit a lower id
SETTLE_S = 2.0
#: a spiking term whose messages an open (or just closed) incident mostly accounts for is not a new problem
EXPLAINED = 0.5


@dataclass(frozen=True)
class DetectConfig:
    window_s: int
    bucket_s: int
    baseline_s: int
    rule: topics.Rule
    on_spike: str
    cooldown_s: int

    @property
    def buckets_per_window(self) -> int:
        return max(1, math.ceil(self.window_s / self.bucket_s))


def detect_config() -> DetectConfig:
    o = settings.OMNIDESK
    on_spike = o.get("INCIDENT_ON_SPIKE", "open")
    if on_spike not in ("open", "suggest"):
        raise ValueError(f"OMNIDESK_INCIDENT_ON_SPIKE must be open or suggest, not {on_spike!r}")
    return DetectConfig(
        window_s=int(o.get("INCIDENT_WINDOW_S", 900)), bucket_s=max(1, int(o.get("INCIDENT_BUCKET_S", 300))),
        baseline_s=int(o.get("INCIDENT_BASELINE_S", 7 * 86400)),
        rule=topics.Rule(factor=float(o.get("INCIDENT_FACTOR", 3.0)), min_count=int(o.get("INCIDENT_MIN_COUNT", 10))),
        on_spike=on_spike, cooldown_s=int(o.get("INCIDENT_COOLDOWN_S", 3600)),
    )


@dataclass
class DetectReport:
    read: int = 0
    counted: int = 0
    linked: int = 0
    spikes: list[topics.TermRate] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)


def bucket_of(when: datetime, bucket_s: int) -> datetime:
    seconds = int(when.timestamp()) // bucket_s * bucket_s
    return datetime.fromtimestamp(seconds, tz=dt_timezone.utc)


def window_start(now: datetime, cfg: DetectConfig) -> datetime:
    """The first bucket of the current window (the current, partial bucket is its last)."""
    return bucket_of(now, cfg.bucket_s) - timedelta(seconds=cfg.bucket_s * (cfg.buckets_per_window - 1))


def incidents_detect(*, now: datetime | None = None, settle_s: float = SETTLE_S) -> DetectReport:
    """One run of the detector: count what is new, link it, then look for spikes."""
    now = now or timezone.now()
    cfg = detect_config()
    report = DetectReport()
    for _ in range(MAX_BATCHES):
        with transaction.atomic():
            cursor = detector_lock()
            rows = _messages_after(cursor.last_message_id, until=now - timedelta(seconds=settle_s))
            if rows:
                _batch_apply(rows, cfg, now, report)
                cursor.last_message_id = rows[-1]["pk"]
                cursor.save(update_fields=["last_message_id"])
        if len(rows) < BATCH:
            break
    with transaction.atomic():
        cursor = detector_lock()
        _spikes_open(cfg, now, report)
        _prune(cfg, now)
        cursor.last_run_at = now
        cursor.save(update_fields=["last_run_at"])
        changed_on_commit(report.changed)
    return report


def _messages_after(last_id: int, *, until: datetime) -> list[dict[str, Any]]:
    return list(
        Message.objects.filter(pk__gt=last_id, created_at__lte=until)
        .order_by("pk")
        .values("pk", "ticket_id", "direction", "kind", "automated", "subject", "text", "call", "sentiment", "sent_at",
                "received_at", "account__kind")[:BATCH]
    )


def message_topic_text(row: dict[str, Any]) -> str:
    """What the customer said: a call's notes (not our summary of the call), else subject and text."""
    if row["kind"] == Message.Kind.CALL:
        return str((row["call"] or {}).get("notes") or "")
    return f"{row['subject']}\n{row['text']}" if row["subject"] else row["text"]


def _batch_apply(rows: list[dict[str, Any]], cfg: DetectConfig, now: datetime, report: DetectReport) -> None:
    report.read += len(rows)
    counts: dict[tuple[str, datetime], list[float]] = defaultdict(lambda: [0, 0.0])
    found: list[Found] = []
    keep_since = now - timedelta(seconds=2 * cfg.window_s)
    for row in rows:
        if row["direction"] != Message.Direction.INBOUND or row["automated"] or row["kind"] == Message.Kind.NOTE:
            continue
        terms = topics.terms_of(message_topic_text(row))
        if not terms:
            continue
        when = row["sent_at"] or row["received_at"]
        bucket = bucket_of(when, cfg.bucket_s)
        weight = topics.sentiment_weight(row["sentiment"])
        for term in terms:
            pair = counts[(term, bucket)]
            pair[0] += 1
            pair[1] += weight
        report.counted += 1
        found.append(Found(row["pk"], row["ticket_id"], row["account__kind"] or "", when, terms))
    _counts_add(counts)
    RecentMessage.objects.bulk_create(
        [RecentMessage(message_id=f.message_id, ticket_id=f.ticket_id, channel=f.channel, sent_at=f.sent_at,
                       terms=sorted(f.terms)) for f in found if f.sent_at >= keep_since],
        ignore_conflicts=True,
    )
    incidents = list(Incident.objects.filter(status__in=OPEN))
    if incidents and found:
        grown = incidents_link_new(incidents=incidents, found=found)
        report.changed |= grown


def _counts_add(counts: dict[tuple[str, datetime], list[float]]) -> None:
    """Add to the counts in one statement per batch (an upsert that increments; PostgreSQL and SQLite)."""
    if not counts:
        return
    table = connection.ops.quote_name(TermCount._meta.db_table)
    sql = (
        f"INSERT INTO {table} (term, bucket, count, weight) VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT (term, bucket) DO UPDATE SET count = {table}.count + excluded.count, "
        f"weight = {table}.weight + excluded.weight"
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [(term, adapt(bucket), int(n), float(w)) for (term, bucket), (n, w) in sorted(counts.items())]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def current_rates(cfg: DetectConfig, now: datetime) -> dict[str, tuple[int, float]]:
    """Terms with at least the minimum count in the current window: (messages, weighted)."""
    rows = (
        TermCount.objects.filter(bucket__gte=window_start(now, cfg))
        .values("term").annotate(n=Sum("count"), w=Sum("weight")).filter(n__gte=cfg.rule.min_count)
    )
    return {r["term"]: (int(r["n"]), float(r["w"])) for r in rows}


def baselines(terms: list[str], cfg: DetectConfig, now: datetime) -> dict[str, float]:
    """Weighted messages per window-length over the baseline period before the current window."""
    start = window_start(now, cfg)
    rows = (
        TermCount.objects.filter(term__in=terms, bucket__gte=start - timedelta(seconds=cfg.baseline_s), bucket__lt=start)
        .values("term").annotate(w=Sum("weight"))
    )
    windows = cfg.baseline_s / (cfg.buckets_per_window * cfg.bucket_s)
    return {r["term"]: float(r["w"]) / windows for r in rows}


def _spikes_open(cfg: DetectConfig, now: datetime, report: DetectReport) -> None:
    current = current_rates(cfg, now)
    if not current:
        return
    spikes = topics.spikes_find(current, baselines(list(current), cfg, now), cfg.rule)
    report.spikes = spikes
    if not spikes:
        return
    rates = {s.term: s for s in spikes}
    recent = recent_found(since=min(recent_since(now), window_start(now, cfg)))
    current = [f for f in recent if f.sent_at >= window_start(now, cfg)]
    docs = [f.terms for f in current]
    known = list(Incident.objects.filter(status__in=OPEN)) + list(
        Incident.objects.filter(
            status__in=[Incident.Status.RESOLVED, Incident.Status.DISMISSED],
            updated_at__gte=now - timedelta(seconds=cfg.cooldown_s),
        )
    )
    lifts = {s.term: math.inf if s.ratio is None else s.ratio for s in spikes}
    groups = topics.clusters([s.term for s in spikes], docs, channels=[f.channel for f in current], lifts=lifts)
    for cluster in topics.clusters_merge(groups, docs, lifts=lifts):
        if any(_same_problem(k.signature, cluster) for k in known):
            continue
        if topics.explained_share(cluster[0], docs, [k.signature for k in known]) >= EXPLAINED:
            continue
        lead = rates[cluster[0]]
        incident = incident_open(
            title=topics.title_of(cluster), signature=cluster, source=Incident.Source.DETECTED,
            status=Incident.Status.ACTIVE if cfg.on_spike == "open" else Incident.Status.SUGGESTED,
            summary=(f"{lead.count} messages about “{lead.term}” in the last {cfg.window_s // 60} minutes; "
                     f"usually {lead.baseline:.1f}"),
            window_count=lead.count, baseline=lead.baseline, now=now, recent=recent, announce=False,
        )
        known.append(incident)
        report.opened.append(incident.pk)
        report.changed.add(incident.pk)


def _same_problem(a: list[str] | tuple[str, ...], b: list[str] | tuple[str, ...]) -> bool:
    return topics.matches(a, b) or topics.matches(b, a)


def _prune(cfg: DetectConfig, now: datetime) -> None:
    start = window_start(now, cfg)
    TermCount.objects.filter(bucket__lt=start - timedelta(seconds=cfg.baseline_s)).delete()
    RecentMessage.objects.filter(sent_at__lt=now - timedelta(seconds=2 * cfg.window_s)).delete()
