"""Server-rendered SVG charts for the parity page: no JavaScript, no CDN (the PNG export draws with matplotlib)."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH = 640
ROW = 22
LEFT = 110
RIGHT = 70
COLOURS = {"p50": "#2b6cb0", "p90": "#dd6b20", "p99": "#c53030", "value": "#2f855a", "flag": "#c53030"}


def duration(seconds: float | None) -> str:
    """4 s, 12 min, 3.5 h, 2.1 d."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if abs(s) < 60:
        return f"{s:.0f} s"
    if abs(s) < 3600:
        return f"{s / 60:.1f} min"
    if abs(s) < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _svg(title: str, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="12">'
        f'<title>{escape(title)}</title><rect width="{WIDTH}" height="{height}" fill="#fff"/>'
        f'<text x="8" y="16" font-weight="bold" font-size="13">{escape(title)}</text>' + "".join(body) + "</svg>"
    )


def first_response_chart(report: dict[str, Any], *, business: bool = False) -> str:
    """Grouped horizontal bars: p50, p90, p99 of the first response per channel (and pooled)."""
    key = "first_response_business" if business else "first_response"
    rows = [*report["channels"], report["pooled"]]
    top = max([r[key][q] or 0 for r in rows for q in ("p50", "p90", "p99")] + [1])
    scale = (WIDTH - LEFT - RIGHT) / top
    body: list[str] = []
    y = 30
    for r in rows:
        body.append(f'<text x="{LEFT - 6}" y="{y + ROW * 1.5 + 4}" text-anchor="end">{escape(r["channel"])} (n={r[key]["n"]})</text>')
        for i, q in enumerate(("p50", "p90", "p99")):
            v = r[key][q]
            w = 0 if v is None else max(1.0, max(v, 0) * scale)
            yy = y + i * ROW
            body.append(f'<rect x="{LEFT}" y="{yy + 3}" width="{w:.1f}" height="{ROW - 6}" fill="{COLOURS[q]}"/>')
            body.append(f'<text x="{LEFT + w + 4:.1f}" y="{yy + ROW - 7}">{q} {duration(v)}</text>')
        y += 3 * ROW + 8
    kind = "business" if business else "calendar"
    return _svg(f"First response ({kind} time): p50 / p90 / p99", y + 4, body)


def proportion_chart(report: dict[str, Any], key: str, title: str) -> str:
    """Bars from 0 to 100% with the Wilson 95% interval as whiskers and n beside each bar."""
    rows = [*report["channels"], report["pooled"]]
    span = WIDTH - LEFT - RIGHT
    body: list[str] = []
    y = 30
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        x = LEFT + frac * span
        body.append(f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{30 + len(rows) * ROW * 1.4:.0f}" stroke="#e2e8f0"/>')
    for r in rows:
        fig = r[key]
        flagged = any(f["metric"] == key and f["channel"] == r["channel"] for f in report["flags"])
        colour = COLOURS["flag"] if flagged else COLOURS["value"]
        body.append(f'<text x="{LEFT - 6}" y="{y + ROW - 7}" text-anchor="end">{escape(r["channel"])}</text>')
        if fig["value"] is not None:
            w = fig["value"] * span
            body.append(f'<rect x="{LEFT}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" fill="{colour}" opacity="0.85"/>')
            lo, hi = LEFT + fig["ci_low"] * span, LEFT + fig["ci_high"] * span
            mid = y + ROW / 2
            body.append(
                f'<path d="M{lo:.1f},{mid} H{hi:.1f} M{lo:.1f},{mid - 5} V{mid + 5} M{hi:.1f},{mid - 5} V{mid + 5}" '
                'stroke="#1a202c" stroke-width="1.5" fill="none"/>'
            )
        label = f'{percent(fig["value"])} n={fig["n"]}'
        body.append(f'<text x="{WIDTH - RIGHT + 4}" y="{y + ROW - 7}">{escape(label)}</text>')
        y += int(ROW * 1.4)
    return _svg(title + " (whiskers: Wilson 95% CI)", y + 4, body)


def report_charts(report: dict[str, Any]) -> dict[str, str]:
    return {
        "first_response": first_response_chart(report),
        "first_response_business": first_response_chart(report, business=True),
        "sla_first_response": proportion_chart(report, "sla_first_response", "First-response SLA attainment"),
        "share_answered": proportion_chart(report, "share_answered", "Share answered"),
    }
