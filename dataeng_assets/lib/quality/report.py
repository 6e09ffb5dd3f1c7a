"""The quality report: overall score, top failing checks, freshness per table, trend.

Read from the metric history (quality.check_results): a check's state is its latest
partition's evaluation; the trend is the share of passing checks per partition date. Written as
JSON, markdown and an SVG chart in `<data home>/quality/`, and shown in the UI as metadata of
`platform/quality_report`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from dataeng_assets.lib import env
from dataeng_assets.lib.quality.engine import ALL
from dataeng_assets.lib.quality.history import SCHEMA, TABLE
from dataeng_assets.lib.warehouse import Session

TREND_PARTITIONS = 14
TOP_FAILING = 10


def report_dir() -> Path:
    return env.data_home() / "quality"


def build(session: Session, freshness: Mapping[str, float | None] | None = None, now: dt.datetime | None = None) -> dict:
    """The report as a dict. `freshness`: asset -> last materialization timestamp (from the instance)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    rows = [] if not session.columns(SCHEMA, TABLE) else session.execute(
        f"SELECT asset_key, check_name, rule, partition_date, passed, severity, observed, threshold, failing_rows, "
        f"partition_key FROM {SCHEMA}.{TABLE}"
    )
    checks: dict[tuple[str, str], dict] = {}
    by_date: dict[dt.date, dict[tuple[str, str], bool]] = {}
    for asset, check, rule, day, passed, severity, observed, threshold, failing_rows, key in rows:
        if not key.startswith(ALL):  # the trend is over partitions; unpartitioned tables count in the score
            per_day = by_date.setdefault(day, {})
            per_day[(asset, check)] = per_day.get((asset, check), True) and bool(passed)
        c = checks.setdefault((asset, check), {"asset": asset, "check": check, "date": day, "rules": []})
        if day > c["date"]:
            c.update(date=day, rules=[])
        if day == c["date"]:
            c["rules"].append((rule, bool(passed), severity, observed, threshold, int(failing_rows or 0)))
    states = []
    for c in checks.values():
        failed = [r for r in c["rules"] if not r[1]]
        first = failed[0] if failed else c["rules"][0]
        states.append({
            "asset": c["asset"], "check": c["check"], "partition": c["date"].isoformat(), "passed": not failed,
            "severity": first[2], "rule": first[0], "observed": first[3], "threshold": first[4],
            "failing_rows": sum(r[5] for r in failed),
        })
    total = len(states)
    passing = sum(s["passed"] for s in states)
    failing = sorted((s for s in states if not s["passed"]),
                     key=lambda s: (s["severity"] != "critical", -s["failing_rows"], s["asset"], s["check"]))
    trend = [
        {"date": day.isoformat(), "checks": len(v), "score": round(100 * sum(v.values()) / len(v), 1)}
        for day, v in sorted(by_date.items())[-TREND_PARTITIONS:]
    ]
    fresh = []
    for asset, ts in sorted((freshness or {}).items()):
        age_h = None if ts is None else round((now.timestamp() - ts) / 3600, 2)
        fresh.append({"asset": asset, "last_materialized": None if ts is None else
                      dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(), "age_hours": age_h})
    return {
        "generated_at": now.isoformat(),
        "score": round(100 * passing / total, 1) if total else None,
        "checks": total,
        "passing": passing,
        "failing": len(failing),
        "failing_critical": sum(s["severity"] == "critical" for s in failing),
        "top_failing": failing[:TOP_FAILING],
        "trend": trend,
        "freshness": fresh,
    }


def markdown(report: dict) -> str:
    score = "n/a" if report["score"] is None else f"{report['score']}%"
    delta = ""
    if len(report["trend"]) >= 2:
        d = report["trend"][-1]["score"] - report["trend"][-2]["score"]
        delta = f" ({'↑' if d >= 0 else '↓'} {abs(d):.1f} pts from the previous partition)"
    lines = [f"**Overall quality score: {score}**{delta} — {report['passing']} of {report['checks']} checks passing",
             ""]
    if report["top_failing"]:
        lines += [f"Failing checks: {report['failing']} ({report['failing_critical']} critical)", "",
                  "| asset | check | severity | observed | threshold | partition |", "|---|---|---|---|---|---|"]
        for s in report["top_failing"]:
            lines.append(f"| {s['asset']} | {s['check']} | {s['severity']} | {s['observed']} | {s['threshold']} "
                         f"| {s['partition']} |")
        lines.append("")
    if report["trend"]:
        lines += ["| partition | checks | score |", "|---|---|---|"]
        lines += [f"| {t['date']} | {t['checks']} | {t['score']}% |" for t in report["trend"]]
        lines.append("")
    if report["freshness"]:
        lines += ["| table | last materialized | age (h) |", "|---|---|---|"]
        lines += [f"| {f['asset']} | {f['last_materialized'] or 'never'} | {f['age_hours'] if f['age_hours'] is not None else '–'} |"
                  for f in report["freshness"]]
    return "\n".join(lines)


def svg_chart(report: dict, width: int = 640, height: int = 240) -> str:
    """Score per partition as a line chart: no plotting library needed to open it anywhere."""
    pts = report["trend"]
    pad = 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="11">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{pad}" y="18" font-size="13">Quality score per partition (%)</text>']
    for pct in (0, 50, 100):
        y = height - pad - (height - 2 * pad) * pct / 100
        parts.append(f'<line x1="{pad}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="4" y="{y + 4:.1f}">{pct}</text>')
    if pts:
        step = (width - pad - 20) / max(1, len(pts) - 1)
        coords = [(pad + i * step, height - pad - (height - 2 * pad) * p["score"] / 100) for i, p in enumerate(pts)]
        parts.append('<polyline fill="none" stroke="#4f46e5" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
        for (x, y), p in zip(coords, pts, strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#4f46e5"><title>{escape(p["date"])}: '
                         f'{p["score"]}%</title></circle>')
        parts.append(f'<text x="{pad}" y="{height - 12}">{escape(pts[0]["date"])}</text>')
        parts.append(f'<text x="{width - 90}" y="{height - 12}">{escape(pts[-1]["date"])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_files(report: dict, folder: Path | None = None) -> dict[str, Path]:
    folder = folder or report_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "quality_report.json", "markdown": folder / "quality_report.md",
             "chart": folder / "quality_trend.svg"}
    for kind, text in (("json", json.dumps(report, indent=2, default=str)), ("markdown", markdown(report)),
                       ("chart", svg_chart(report))):
        tmp = paths[kind].with_suffix(paths[kind].suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(paths[kind])  # atomic: a reader never sees half a report
    return paths
