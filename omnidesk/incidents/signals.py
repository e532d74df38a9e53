"""Status signals: a monitoring system or status page opens, updates and resolves incidents.

Called by the ingest pipeline (inside its transaction) for a `StatusSignal` item of the API channel.
"""

from __future__ import annotations

from django.utils import timezone

from omnidesk.plugins.contract import StatusSignal
from omnidesk.plugins.models import ChannelAccount

from .linking import changed_on_commit, incident_open, incident_status_set, signature_of
from .models import Incident


def status_signal_apply(*, account: ChannelAccount, signal: StatusSignal) -> str:
    """Idempotent: the same update twice changes nothing; a note says what happened, for the event log."""
    incident = Incident.objects.select_for_update().filter(signal_account=account, signal_key=signal.incident_key).first()
    if incident is None:
        if signal.status == "resolved":
            return f"status {signal.incident_key!r} resolved, but no incident was open for it; nothing to do"
        incident = incident_open(
            title=signal.title, signature=signature_of(signal.title, *signal.components), source=Incident.Source.SIGNAL,
            summary=signal.text[:5000], now=signal.at or timezone.now(), signal_account=account,
            signal_key=signal.incident_key, signal_status=signal.status,
        )
        return f"incident #{incident.pk} opened from status {signal.incident_key!r} ({signal.status})"
    fields = ["signal_status", "updated_at"]
    incident.signal_status = signal.status
    if signal.text:
        incident.summary = signal.text[:5000]
        fields.append("summary")
    incident.save(update_fields=fields)
    changed_on_commit({incident.pk})
    if signal.status == "resolved" and incident.status in (Incident.Status.ACTIVE, Incident.Status.SUGGESTED):
        if incident.status == Incident.Status.SUGGESTED:
            incident_status_set(incident=incident, status=Incident.Status.ACTIVE, note="confirmed by the status page")
        incident_status_set(incident=incident, status=Incident.Status.RESOLVED, note=f"resolved by the status page: {signal.title}")
        return f"incident #{incident.pk} resolved by status {signal.incident_key!r}"
    if signal.status != "resolved" and incident.status == Incident.Status.RESOLVED:
        incident_status_set(incident=incident, status=Incident.Status.ACTIVE, note=f"status page: {signal.status} again")
        return f"incident #{incident.pk} reopened by status {signal.incident_key!r} ({signal.status})"
    return f"incident #{incident.pk} updated by status {signal.incident_key!r} ({signal.status})"
