"""python manage.py parity_report --since YYYY-MM-DD --until YYYY-MM-DD [--group NAME] [--csv FILE] [--png FILE]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from omnidesk.reports.charts import duration, percent
from omnidesk.reports.export import report_csv, report_png
from omnidesk.reports.metrics import Scope
from omnidesk.reports.parity import parity_report, rule_from
from omnidesk.reports.selectors import GroupNotVisible, ReportInputInvalid, parse_day
from omnidesk.routing.models import Group


class Command(BaseCommand):
    help = "The channel parity report, as a summary, CSV and/or a PNG of its charts (matplotlib)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", required=True, help="YYYY-MM-DD, included (customer_first_message_at)")
        parser.add_argument("--until", required=True, help="YYYY-MM-DD, excluded")
        parser.add_argument("--group", help="a group name (default: every group)")
        parser.add_argument("--csv", help="write the report as CSV to this file ('-' for stdout)")
        parser.add_argument("--png", help="write the charts as a PNG image to this file")
        parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
        parser.add_argument("--materiality", type=float)
        parser.add_argument("--alpha", type=float)
        parser.add_argument("--min-n", type=int)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            since, until = parse_day(opts["since"], name="--since"), parse_day(opts["until"], name="--until")
            if since >= until:
                raise ReportInputInvalid("--since must be before --until")
            group_ids = None
            if opts["group"]:
                pk = Group.objects.filter(name=opts["group"]).values_list("pk", flat=True).first()
                if pk is None:
                    raise GroupNotVisible(f"there is no group {opts['group']!r}")
                group_ids = frozenset({pk})
            rule = rule_from(materiality=opts["materiality"], alpha=opts["alpha"], min_n=opts["min_n"])
        except (ReportInputInvalid, GroupNotVisible, ValueError) as exc:
            raise CommandError(str(exc)) from None
        report = parity_report(scope=Scope(since=since, until=until, group_ids=group_ids), rule=rule)
        if opts["csv"] == "-":
            self.stdout.write(report_csv(report), ending="")
        elif opts["csv"]:
            Path(opts["csv"]).write_text(report_csv(report), encoding="utf-8")
        if opts["png"]:
            Path(opts["png"]).write_bytes(report_png(report))
        if opts["json"]:
            self.stdout.write(json.dumps(report, default=str))
        elif opts["csv"] != "-":
            self.stdout.write(self._summary(report))

    def _summary(self, report: dict[str, Any]) -> str:
        lines = [f"Channel parity, customer first message in [{report['scope']['since']}, {report['scope']['until']})"]
        lines.append(f"{'channel':<10} {'tickets':>8} {'answered':>9} {'FR p50':>9} {'FR p90':>9} {'FR SLA':>8} {'n':>6}")
        for b in [*report["channels"], report["pooled"]]:
            lines.append(
                f"{b['channel']:<10} {b['volume']:>8} {percent(b['share_answered']['value']):>9} "
                f"{duration(b['first_response']['p50']):>9} {duration(b['first_response']['p90']):>9} "
                f"{percent(b['sla_first_response']['value']):>8} {b['sla_first_response']['n']:>6}"
            )
        for f in report["flags"]:
            lines.append(
                f"GAP {f['channel']}: {f['label']} {f['comparison'].replace('_', ' ')} ({f['against']}) "
                f"{f['relative'] * 100:.0f}% worse, p={f['p_value']:.4f}, n={f['n']} vs {f['n_reference']}"
            )
        if not report["flags"]:
            lines.append("No material and significant gap between channels.")
        return "\n".join(lines)
