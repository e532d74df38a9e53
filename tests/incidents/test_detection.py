"""The detector on the database: incremental counts, spikes against the baseline, linking, pruning."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnidesk.incidents.detection import incidents_detect as _detect
from omnidesk.incidents.models import DetectorCursor, Incident, IncidentTicket, RecentMessage, TermCount
from omnidesk.tickets.models import TicketEvent

from .traffic import BACKGROUND_TEXTS, STORM_TEXTS, now_utc

pytestmark = pytest.mark.django_db


def incidents_detect():  # type: ignore[no-untyped-def]
    return _detect(settle_s=0)  # the messages were committed just now, by this very test


def minutes_ago(m: float):  # type: ignore[no-untyped-def]
    return now_utc() - timedelta(minutes=m)


def background(n: int, *, hours: float = 48) -> list:  # type: ignore[type-arg]
    """n ordinary messages spread over the last `hours` (before the current window)."""
    return [(BACKGROUND_TEXTS[i % len(BACKGROUND_TEXTS)], minutes_ago(30 + i * hours * 60 / n)) for i in range(n)]


def test_a_storm_over_quiet_traffic_opens_one_incident_linking_only_its_tickets(say) -> None:  # type: ignore[no-untyped-def]
    quiet = say(background(40))
    calm = incidents_detect()
    assert calm.opened == [] and calm.read == 40
    storm = say([(STORM_TEXTS[i % len(STORM_TEXTS)], minutes_ago(10 - i * 0.3)) for i in range(24)])
    during = say(background(6, hours=0.1))  # normal traffic during the storm, written in the window too
    report = incidents_detect()
    assert report.read == 30  # only what is new since the last run
    assert len(report.opened) == 1
    incident = Incident.objects.get()
    assert incident.status == "active" and incident.source == "detected" and incident.window_count >= 10
    assert {"app", "log"} <= set(incident.signature)
    linked = set(IncidentTicket.objects.filter(incident=incident).values_list("ticket_id", flat=True))
    assert linked == set(storm)
    assert not linked & (set(quiet) | set(during))
    assert TicketEvent.objects.filter(action="incident_linked", ticket_id__in=storm).count() == len(storm)
    # the next run reads nothing old, opens nothing new; a later complaint joins the incident
    assert incidents_detect().read == 0 and Incident.objects.count() == 1
    later = say([("still can't log in to your app!!", minutes_ago(0.5))])
    again = incidents_detect()
    assert again.read == 1 and again.opened == [] and again.changed == {incident.pk}
    assert IncidentTicket.objects.filter(incident=incident, ticket_id=later[0]).exists()
    assert DetectorCursor.objects.get().last_message_id > 0


def test_below_the_minimum_count_nothing_opens(say, settings) -> None:  # type: ignore[no-untyped-def]
    say([(STORM_TEXTS[i % len(STORM_TEXTS)], minutes_ago(5)) for i in range(9)])
    assert incidents_detect().opened == []
    settings.OMNIDESK = {**settings.OMNIDESK, "INCIDENT_MIN_COUNT": 9}
    assert len(incidents_detect().opened) == 1


def test_a_busy_topic_is_not_a_spike_and_angry_messages_weigh_more(say, settings) -> None:  # type: ignore[no-untyped-def]
    # Baseline one hour = 4 windows; 16 neutral "card payment" messages in it: 4 per window, so 3× is 12.
    settings.OMNIDESK = {**settings.OMNIDESK, "INCIDENT_BASELINE_S": 3600, "INCIDENT_BUCKET_S": 60}
    say([("card payment question", minutes_ago(20 + i * 2.5)) for i in range(16)])
    say([("card payment question", minutes_ago(5)) for _ in range(10)])  # neutral: 10 < 12
    report = incidents_detect()
    assert report.opened == [] and report.spikes == []
    say([("card payment rejected, furious, terrible awful service", minutes_ago(4)) for _ in range(3)])
    report = incidents_detect()  # 13 messages; the angry ones weigh ~1.5: over 12
    assert len(report.opened) == 1 and "card" in Incident.objects.get().signature


def test_suggest_mode_waits_for_a_manager(say, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OMNIDESK = {**settings.OMNIDESK, "INCIDENT_ON_SPIKE": "suggest"}
    say([(STORM_TEXTS[i % len(STORM_TEXTS)], minutes_ago(3)) for i in range(12)])
    incidents_detect()
    assert Incident.objects.get().status == "suggested"
    assert IncidentTicket.objects.count() == 12  # linked already, so the manager sees what it is about


def test_a_resolved_incident_is_not_reopened_by_its_own_tail(say) -> None:  # type: ignore[no-untyped-def]
    say([(STORM_TEXTS[i % len(STORM_TEXTS)], minutes_ago(8)) for i in range(12)])
    incidents_detect()
    Incident.objects.update(status="resolved")
    say([(STORM_TEXTS[0], minutes_ago(1))])
    assert incidents_detect().opened == []


def test_notes_automated_mail_and_old_buckets_are_left_out(say, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OMNIDESK = {**settings.OMNIDESK, "INCIDENT_BASELINE_S": 3600}
    say([("an old complaint about the weather", now_utc() - timedelta(days=3))])
    incidents_detect()
    assert not TermCount.objects.filter(term="weather").exists()  # pruned: older than the baseline
    assert not RecentMessage.objects.exists()  # only the last windows' messages are kept
    say([("the weather today", minutes_ago(1))])
    incidents_detect()
    assert TermCount.objects.get(term="weather").count == 1


def test_detection_is_incremental_over_a_big_backlog(say, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from omnidesk.incidents import detection

    monkeypatch.setattr(detection, "BATCH", 7)
    say(background(30, hours=1))
    report = incidents_detect()
    assert report.read == 30  # five batches of at most 7, one run
    assert incidents_detect().read == 0


def test_the_scheduler_runs_the_detector_at_the_configured_interval(settings) -> None:
    from omnidesk.inbox.scheduler import jobs
    from omnidesk.incidents.tasks import detect_incidents

    settings.OMNIDESK = {**settings.OMNIDESK, "INCIDENT_DETECT_INTERVAL_S": 45}
    job = {j.name: j for j in jobs()}["detect-incidents"]
    assert job.every_s == 45 and not job.at_start
    detect_incidents()  # the actor's body, in this process: one run, nothing to read
    assert DetectorCursor.objects.get().last_run_at is not None
