"""The report as CSV (one row per channel, then the pool) and as a PNG of its charts (matplotlib)."""

from __future__ import annotations

import csv
import io
from typing import Any

from .metrics import QUANTILES
from .parity import COMPARED

PROPORTIONS = ("share_answered", "sla_first_response", "sla_resolution", "reopen_rate", "handoff_share")


def csv_columns() -> list[str]:
    cols = ["channel", "volume"]
    for key in PROPORTIONS:
        cols += [key, f"{key}_x", f"{key}_n", f"{key}_ci_low", f"{key}_ci_high"]
    cols += ["transfers_per_ticket", "transfers"]
    for metric, qs in QUANTILES.items():
        cols += [f"{metric}_p{round(q * 100)}_s" for q in qs] + [f"{metric}_n"]
    cols += [f"{c.key}_vs_best" for c in COMPARED] + [f"{c.key}_vs_pool" for c in COMPARED]
    return cols


def _row(block: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"channel": block["channel"], "volume": block["volume"]}
    for key in PROPORTIONS:
        fig = block[key]
        row.update({key: fig["value"], f"{key}_x": fig["x"], f"{key}_n": fig["n"],
                    f"{key}_ci_low": fig["ci_low"], f"{key}_ci_high": fig["ci_high"]})
    row["transfers_per_ticket"] = block["transfers_per_ticket"]["value"]
    row["transfers"] = block["transfers_per_ticket"]["transfers"]
    for metric, qs in QUANTILES.items():
        for q in qs:
            row[f"{metric}_p{round(q * 100)}_s"] = block[metric][f"p{round(q * 100)}"]
        row[f"{metric}_n"] = block[metric]["n"]
    for c in COMPARED:
        parity = block.get("parity", {}).get(c.key, {})
        for against in ("vs_best", "vs_pool"):
            row[f"{c.key}_{against}"] = parity.get(against, {}).get("verdict", "")
    return {k: ("" if v is None else round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}


def report_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=csv_columns(), lineterminator="\n")
    writer.writeheader()
    for block in [*report["channels"], report["pooled"]]:
        writer.writerow(_row(block))
    return out.getvalue()


def report_png(report: dict[str, Any]) -> bytes:
    """The three charts of the page in one image, drawn with matplotlib (Agg, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [*report["channels"], report["pooled"]]
    names = [r["channel"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(8, 10), constrained_layout=True)
    ax = axes[0]
    height = 0.25
    for i, (q, colour) in enumerate((("p50", "#2b6cb0"), ("p90", "#dd6b20"), ("p99", "#c53030"))):
        vals = [(r["first_response"][q] or 0) / 60 for r in rows]
        ax.barh([j + i * height for j in range(len(rows))], vals, height=height, color=colour, label=q)
    ax.set_yticks([j + height for j in range(len(rows))], [f'{n} (n={r["first_response"]["n"]})' for n, r in zip(names, rows)])
    ax.invert_yaxis()
    ax.set_xlabel("minutes")
    ax.set_title("First response (calendar time): p50 / p90 / p99")
    ax.legend(loc="lower right")
    for ax, key, title in ((axes[1], "sla_first_response", "First-response SLA attainment"),
                           (axes[2], "share_answered", "Share answered")):
        vals = [(r[key]["value"] or 0) * 100 for r in rows]
        lo = [v - (r[key]["ci_low"] or 0) * 100 if r[key]["value"] is not None else 0 for v, r in zip(vals, rows)]
        hi = [(r[key]["ci_high"] or 0) * 100 - v if r[key]["value"] is not None else 0 for v, r in zip(vals, rows)]
        ax.barh(range(len(rows)), vals, xerr=[lo, hi], color="#2f855a", capsize=4)
        ax.set_yticks(range(len(rows)), [f'{n} (n={r[key]["n"]})' for n, r in zip(names, rows)])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("%")
        ax.set_title(title + " (whiskers: Wilson 95% CI)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
