"""The optimizer's report as markdown (UI metadata, CLI), JSON (files, `--compare`) and HTML with
two SVG charts: step durations over time, and a Gantt of the slowest run. No plotting library."""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone

from dataeng_assets.lib.optimizer.analysis import Recommendation, analyze, critical_path, summary
from dataeng_assets.lib.optimizer.collect import RunRecord, machine

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"]


def build(runs: list[RunRecord], mach: dict | None = None) -> dict:
    mach = mach or machine()
    recs = analyze(runs, mach)
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": mach,
        "summary": summary(runs),
        "recommendations": [r.to_dict() for r in recs],
        "runs": [
            {"run_id": r.run_id, "job": r.job, "status": r.status, "start": r.start, "wall_s": r.wall_s,
             "partition_range": r.partition_range, "partitions": r.partitions,
             "steps": [{"step": s.step_key, "start": s.start, "end": s.end, "seconds": s.duration_s,
                        "attempts": s.attempts, "rows": s.rows, "peak_rss_mib": s.metrics.get("peak_rss_mib"),
                        "cpu_s": s.metrics.get("cpu_s"), "warehouse_s": s.metrics.get("warehouse_s")}
                       for s in r.steps]}
            for r in runs
        ],
    }


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)


def _gain(r: dict) -> str:
    g = r.get("estimated_gain_s")
    return f"{g:.1f}s" if isinstance(g, (int, float)) and g else "–"


def to_markdown(report: dict, top: int = 10) -> str:
    s = report["summary"]
    lines = [
        f"## Optimizer report ({s['runs']} runs, {report['machine']['cores']} cores, "
        f"{report['machine']['memory_mib']:,} MiB)",
        "",
        f"Total runtime {s['total_runtime_s']:.1f}s; slowest step {s['slowest_step']['step']} "
        f"({s['slowest_step']['seconds']:.1f}s); peak step memory {s['peak_rss_mib']:.0f} MiB.",
        "",
        "### Recommendations",
        "",
        "| # | severity | recommendation | est. gain | action |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(report["recommendations"][:top], 1):
        lines.append(f"| {i} | {r['severity']} | {r['title']} | {_gain(r)} | {r['action']} |")
    if not report["recommendations"]:
        lines.append("| – | – | no recommendations: no finished runs recorded yet | – | – |")
    if report["runs"]:
        last = report["runs"][-1]
        lines += ["", f"### Steps of the latest run ({last['run_id'][:8]}, {last['job']}, {last['wall_s']:.2f}s)", "",
                  "| step | seconds | attempts | rows | peak MiB | CPU s | SQL s |", "|---|---|---|---|---|---|---|"]
        for st in last["steps"]:
            lines.append(
                f"| {st['step']} | {st['seconds']:.2f} | {st['attempts']} | {st['rows'] if st['rows'] is not None else '–'} "
                f"| {st['peak_rss_mib'] if st['peak_rss_mib'] is not None else '–'} | {st['cpu_s'] if st['cpu_s'] is not None else '–'} "
                f"| {st['warehouse_s'] if st['warehouse_s'] is not None else '–'} |"
            )
        trend = [f"{r['wall_s']:.1f}" for r in report["runs"][-20:]]
        lines += ["", f"Run wall time trend (oldest → newest): {' → '.join(trend)} s"]
    return "\n".join(lines)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def gantt_svg(run: dict, width: int = 900) -> str:
    steps = [s for s in run["steps"] if s["start"] is not None and s["end"] is not None]
    if not steps:
        return "<p>no step timings</p>"
    t0 = min(s["start"] for s in steps)
    t1 = max(s["end"] for s in steps)
    span = max(t1 - t0, 1e-6)
    left, row = 260, 22
    h = row * len(steps) + 30
    scale = (width - left - 20) / span
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" font-family="sans-serif" font-size="12">']
    for i, s in enumerate(steps):
        y = 10 + i * row
        x = left + (s["start"] - t0) * scale
        w = max(1.0, (s["end"] - s["start"]) * scale)
        out.append(f'<text x="4" y="{y + 14}">{html.escape(s["step"][:38])}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="{_color(i)}">'
                   f'<title>{html.escape(s["step"])}: {s["seconds"]:.2f}s</title></rect>')
        out.append(f'<text x="{x + w + 4:.1f}" y="{y + 14}">{s["seconds"]:.2f}s</text>')
    out.append(f'<text x="{left}" y="{h - 4}">0s</text><text x="{width - 60}" y="{h - 4}">{span:.2f}s</text></svg>')
    return "".join(out)


def trend_svg(runs: list[dict], width: int = 900, height: int = 260) -> str:
    series: dict[str, list[float]] = {}
    for r in runs:
        for s in r["steps"]:
            series.setdefault(s["step"], [])
    for r in runs:
        got = {s["step"]: s["seconds"] for s in r["steps"]}
        for k in series:
            series[k].append(got.get(k, float("nan")))
    if not runs or not series:
        return "<p>no runs</p>"
    ymax = max([v for vs in series.values() for v in vs if v == v] or [1.0]) or 1.0
    n = len(runs)
    left, bottom = 50, 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20 * len(series)}" font-family="sans-serif" font-size="12">',
           f'<text x="4" y="14">{ymax:.1f}s</text><text x="4" y="{height - bottom}">0s</text>']
    for i, (name, vs) in enumerate(series.items()):
        pts = []
        for j, v in enumerate(vs):
            if v != v:
                continue
            x = left + (j / max(1, n - 1)) * (width - left - 20)
            y = (height - bottom) - (v / ymax) * (height - bottom - 20)
            pts.append(f"{x:.1f},{y:.1f}")
        out.append(f'<polyline fill="none" stroke="{_color(i)}" stroke-width="2" points="{" ".join(pts)}"/>')
        out.append(f'<rect x="{left}" y="{height + 20 * i - 10}" width="12" height="12" fill="{_color(i)}"/>'
                   f'<text x="{left + 18}" y="{height + 20 * i}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def to_html(report: dict) -> str:
    md_rows = "".join(
        f"<tr><td>{i}</td><td class='{html.escape(r['severity'])}'>{html.escape(r['severity'])}</td>"
        f"<td>{html.escape(r['title'])}</td><td>{_gain(r)}</td><td>{html.escape(r['action'])}</td>"
        f"<td><details><summary>evidence</summary><pre>{html.escape(json.dumps(r['evidence'], indent=1, default=str))}</pre></details></td></tr>"
        for i, r in enumerate(report["recommendations"], 1)
    )
    slowest = max(report["runs"], key=lambda r: r["wall_s"], default=None)
    s = report["summary"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>dataeng optimizer report</title>
<style>body{{font-family:sans-serif;margin:24px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
.critical{{color:#b00;font-weight:bold}}.warning{{color:#b60}}.info{{color:#555}}</style></head><body>
<h1>Optimizer report</h1>
<p>{s['runs']} runs · total runtime {s['total_runtime_s']:.1f}s · slowest step {html.escape(str(s['slowest_step']['step']))}
({s['slowest_step']['seconds']:.1f}s) · peak step memory {s['peak_rss_mib']:.0f} MiB · generated {report['generated_at']}</p>
<h2>Recommendations</h2><table><tr><th>#</th><th>severity</th><th>recommendation</th><th>est. gain</th><th>action</th><th></th></tr>{md_rows}</table>
<h2>Step durations over runs</h2>{trend_svg(report['runs'])}
<h2>Slowest run{(': ' + html.escape(slowest['run_id'][:8]) + f" ({slowest['wall_s']:.2f}s)") if slowest else ''}</h2>{gantt_svg(slowest) if slowest else ''}
</body></html>"""


def render(report: dict, fmt: str) -> str:
    return {"json": to_json, "markdown": to_markdown, "html": to_html}[fmt](report)


def compare(before: dict, after: dict) -> str:
    """The seed's before/after comparison from two JSON reports."""
    b, a = before["summary"], after["summary"]

    def pct(x, y):
        return f"{(y - x) / x:+.0%}" if x else "n/a"

    lines = [
        "Performance comparison (before → after)",
        f"- Total runtime: {b['total_runtime_s']:.1f}s → {a['total_runtime_s']:.1f}s ({pct(b['total_runtime_s'], a['total_runtime_s'])})",
        f"- Slowest step: {b['slowest_step']['step']} {b['slowest_step']['seconds']:.1f}s → "
        f"{a['slowest_step']['step']} {a['slowest_step']['seconds']:.1f}s",
        f"- Peak step memory: {b['peak_rss_mib']:.0f} MiB → {a['peak_rss_mib']:.0f} MiB ({pct(b['peak_rss_mib'], a['peak_rss_mib'])})",
        f"- Runs: {b['runs']} → {a['runs']}",
        "",
        f"{'step':<50} {'before s':>10} {'after s':>10} {'change':>8}",
    ]
    for step in sorted(set(b["steps"]) | set(a["steps"])):
        x, y = b["steps"].get(step, 0.0), a["steps"].get(step, 0.0)
        lines.append(f"{step:<50} {x:>10.2f} {y:>10.2f} {pct(x, y):>8}")
    return "\n".join(lines)


def compare_figures(before: dict, after: dict) -> dict:
    b, a = before["summary"], after["summary"]
    return {
        "before_runtime_s": b["total_runtime_s"], "after_runtime_s": a["total_runtime_s"],
        "runtime_change": round((a["total_runtime_s"] - b["total_runtime_s"]) / b["total_runtime_s"], 4) if b["total_runtime_s"] else None,
        "before_peak_rss_mib": b["peak_rss_mib"], "after_peak_rss_mib": a["peak_rss_mib"],
    }


__all__ = ["build", "render", "compare", "compare_figures", "Recommendation", "critical_path"]
