"""What every figure of the parity report means. Shown on the page; docs/reports.md says the same."""

from __future__ import annotations

DEFINITIONS: dict[str, str] = {
    "scope": "Tickets whose customer_first_message_at (the customer's first message, by the platform's own clock) "
    "falls in [since, until): since included, until excluded; dates are midnight in the desk's time zone. "
    "Managers see every ticket; an agent's report covers only their groups' tickets. The channel is the kind "
    "of the account the ticket came in on.",
    "volume": "Number of tickets in scope.",
    "share_answered": "Tickets with any agent response (first_response_at set: a reply, a logged call-back that "
    "reached the customer, or a call answered live) over all tickets. Public mentions nobody replied to count "
    "as unanswered.",
    "first_response": "first_response_at − customer_first_message_at, calendar time, percentiles p50/p90/p99 "
    "(linear interpolation, as PostgreSQL percentile_cont) over answered tickets.",
    "first_response_business": "first_response_business_s: business seconds to the first response by the ticket's "
    "SLA policy calendar, frozen when the response happened; p50/p90/p99 over tickets that have it.",
    "next_response": "For every customer message (inbound, not automated) sent after the first response: the time "
    "to the next agent message (outbound, kind message, not automated) sent at or after it. Customer messages "
    "still waiting are not in the sample. p50/p90, calendar time.",
    "resolution": "solved_at − customer_first_message_at over tickets currently solved or closed; p50/p90, "
    "calendar time.",
    "sla_first_response": "First-response SLA attainment: tickets with first_response_met true over tickets with a "
    "decided value (no target, or not yet decided, is left out), with its Wilson 95% interval and n.",
    "sla_resolution": "Resolution SLA attainment: resolution_met true over tickets with a decided value, with its "
    "Wilson 95% interval and n.",
    "reopen_rate": "Tickets reopened at least once (reopen_count > 0) over all tickets.",
    "transfers_per_ticket": "Assignee or group changes from one assignee/group to another (audit events "
    "assignee_changed / group_changed with both an old and a new value; the first assignment is not a transfer) "
    "divided by the number of tickets.",
    "handoff_share": "Tickets moved from public to private (handoff_at set) over tickets whose first customer "
    "message was public (an inbound public message sent at customer_first_message_at).",
    "ingest_lag": "For inbound messages of the tickets in scope: received_at − sent_at, how long the channel made "
    "the customer wait before we saw the message; p50/p99, per the message's channel.",
    "parity": "Each channel against the best channel (the best value among channels with at least the minimum "
    "sample) and against the pool (all channels together). A gap is flagged only when it is material — at least "
    "the materiality (default 20%) worse relative to the reference: lower share answered or attainment, higher "
    "reopen rate or median time — AND significant at alpha (default 0.05): a pooled two-proportion z-test for "
    "proportions, a Mann–Whitney U test (normal approximation, tie-corrected, on one-minute buckets) for times. "
    "Against the pool, the test compares the channel with the other channels. Below the minimum n (default 30) on "
    "either side the report says 'sample too small' and never flags.",
}
