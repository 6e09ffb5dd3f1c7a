"""Recommendations from run-step history: a pure function, tested on its own.

`analyze(runs, machine)` takes RunRecords (oldest first) and the machine's cores and memory, and
returns recommendations sorted by severity, then estimated gain. Every recommendation carries
its evidence (the figures it was derived from), an estimated gain in seconds where one can be
computed, and the concrete change to make.

Thresholds are module constants with the reason they have the value they have.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from dataeng_assets.lib.optimizer.collect import RunRecord, StepRecord

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}

# A step must be at least this long to be worth a recommendation about its own speed: below it,
# scheduling noise dominates what we could measure.
MIN_STEP_S = 0.5
# Fixed cost share of a run above which batching partitions into one run pays: at 50% every
# second extra run costs at least as much as the data work it does.
BATCH_FIXED_SHARE = 0.5
BATCH_MIN_RUNS = 3
# Parallelism is worth advising when it would save this share of the run's step time.
PARALLEL_MIN_SAVING_SHARE = 0.10
PARALLEL_MIN_SAVING_S = 0.2
# Scaling: time ∝ rows^b; b above this means super-linear work (a join blow-up, a sort, a
# row-by-row loop). Needs this many points spanning at least a 4x range of rows.
SCALING_EXPONENT = 1.3
SCALING_MIN_POINTS = 4
SCALING_MIN_SPREAD = 4.0
# Regression: the latest run this much slower than the median of the step's earlier comparable
# runs (same partition count), and more than REGRESSION_MIN_S slower.
REGRESSION_FACTOR = 1.5
REGRESSION_MIN_S = 1.0
REGRESSION_MIN_HISTORY = 3
# Memory: share of the machine's memory that is a real risk; and peak above the data it handled
# by this factor (with at least MEMORY_MIN_MIB of growth), the mark of a pandas/Python hot path.
MEMORY_CRITICAL_SHARE = 0.8
MEMORY_WARNING_SHARE = 0.5
MEMORY_DATA_FACTOR = 8.0
MEMORY_MIN_MIB = 256.0
# Partitions too large: a single partition's step beyond this is hard to retry and to backfill.
PARTITION_TOO_LONG_S = 1800.0
# Full scans: large (≥ this many rows) and highly selective (< this share returned) with every
# row group read: zone maps did not prune.
SCAN_LARGE_ROWS = 1_000_000
SCAN_SELECTIVE = 0.10
# Lake files: below this average size, per-file overhead dominates readers (small-files problem).
SMALL_FILE_BYTES = 4 * 2**20
SMALL_FILES_MIN = 20
# The seed's compression target: Parquet at least 70% smaller than the raw input.
COMPRESSION_TARGET = 0.70


@dataclass
class Recommendation:
    rule: str
    severity: str
    title: str
    action: str
    evidence: dict[str, Any] = field(default_factory=dict)
    estimated_gain_s: float | None = None
    step: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ helpers
def critical_path(steps: list[StepRecord]) -> tuple[float, list[str]]:
    """Longest path through the run's step graph, by duration."""
    by_key = {s.step_key: s for s in steps}
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(key: str, seen: frozenset = frozenset()) -> tuple[float, list[str]]:
        if key in memo:
            return memo[key]
        s = by_key[key]
        best = (0.0, [])
        for up in s.upstream_steps:
            if up in by_key and up not in seen:
                cand = longest(up, seen | {key})
                if cand[0] > best[0]:
                    best = cand
        memo[key] = (best[0] + s.duration_s, best[1] + [key])
        return memo[key]

    paths = [longest(k) for k in by_key]
    return max(paths, default=(0.0, []))


def _ancestors(steps: list[StepRecord]) -> dict[str, set[str]]:
    by_key = {s.step_key: s for s in steps}
    memo: dict[str, set[str]] = {}

    def anc(key: str) -> set[str]:
        if key not in memo:
            memo[key] = set()
            for up in by_key[key].upstream_steps:
                if up in by_key:
                    memo[key] |= {up} | anc(up)
        return memo[key]

    return {k: anc(k) for k in by_key}


def simulate_parallel(steps: list[StepRecord], cores: int) -> float:
    """Makespan if ready steps ran concurrently on `cores`, each using the cores it used before.

    A step's core demand is its CPU time over its wall time (a DuckDB step using 2 threads on a
    2-core machine leaves no room for another); steps of one concurrency pool never overlap (the
    warehouse pool is 1 for DuckDB, one writer process per file): list scheduling in start order.
    """
    by_key = {s.step_key: s for s in steps}
    demand = {
        s.step_key: min(float(cores), max(0.1, (s.metrics.get("cpu_s") or 0.0) / s.duration_s if s.duration_s else 0.1))
        for s in steps
    }
    order = sorted(steps, key=lambda s: (s.start or 0, s.step_key))
    remaining = {s.step_key for s in steps}
    finish: dict[str, float] = {}
    running: list[tuple[float, str]] = []
    t = 0.0
    while remaining or running:
        used = sum(demand[k] for _, k in running)
        busy_pools = {by_key[k].pool for _, k in running if by_key[k].pool}
        for s in order:
            k = s.step_key
            if k not in remaining or any(u in by_key and u not in finish for u in s.upstream_steps):
                continue
            if running and used + demand[k] > cores + 1e-9:
                continue
            if s.pool and s.pool in busy_pools:
                continue
            running.append((t + s.duration_s, k))
            remaining.discard(k)
            used += demand[k]
            if s.pool:
                busy_pools.add(s.pool)
        if not running:  # a dependency cycle: cannot happen in a Dagster plan
            break
        running.sort()
        t, k = running.pop(0)
        finish[k] = t
    return max(finish.values(), default=0.0)


def _data_work_s(step: StepRecord) -> float:
    """Seconds of the step spent on data (SQL, scans, writes); unknown → the whole step."""
    w = step.metrics.get("warehouse_s")
    return float(w) if isinstance(w, (int, float)) else step.duration_s


# ------------------------------------------------------------------ rules
def rule_slowest_steps(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    run = runs[-1]
    busy = sum(s.duration_s for s in run.steps) or 1.0
    top = sorted(run.steps, key=lambda s: -s.duration_s)[:3]
    cp_s, cp = critical_path(run.steps)
    return [Recommendation(
        rule="slowest_steps", severity="info",
        title=f"Slowest step of run {run.run_id[:8]}: {top[0].step_key} ({top[0].duration_s:.2f}s, "
              f"{top[0].duration_s / busy:.0%} of step time)" if top else "no steps",
        action="Optimize the slowest steps on the critical path first: time saved elsewhere does not shorten the run.",
        evidence={"run_id": run.run_id, "run_wall_s": run.wall_s,
                  "slowest": [{"step": s.step_key, "seconds": s.duration_s, "share": round(s.duration_s / busy, 3)} for s in top],
                  "critical_path": cp, "critical_path_s": round(cp_s, 3)},
        step=top[0].step_key if top else None,
    )] if run.steps else []


def rule_serial_independent(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    run = runs[-1]
    steps = [s for s in run.steps if s.start is not None and s.end is not None]
    anc = _ancestors(steps)
    serial_pairs = []
    for i, a in enumerate(steps):
        for b in steps[i + 1:]:
            independent = a.step_key not in anc[b.step_key] and b.step_key not in anc[a.step_key]
            same_pool = a.pool is not None and a.pool == b.pool  # serial on purpose
            overlap = min(a.end, b.end) - max(a.start, b.start)
            if independent and not same_pool and overlap <= 0:
                serial_pairs.append((a.step_key, b.step_key))
    if not serial_pairs:
        return []
    first = min(s.start for s in steps)
    actual = max(s.end for s in steps) - first
    cores = int(machine.get("cores") or 1)
    simulated = simulate_parallel(steps, cores)
    saving = actual - simulated
    if saving < max(PARALLEL_MIN_SAVING_S, PARALLEL_MIN_SAVING_SHARE * actual):
        return []
    involved = sorted({k for p in serial_pairs for k in p})
    return [Recommendation(
        rule="serial_independent_steps", severity="warning",
        title=f"{len(involved)} independent steps ran one after another in run {run.run_id[:8]}",
        action=f"Run independent steps concurrently: use the multiprocess executor (max_concurrent={cores}) "
               "instead of in_process, or raise the concurrency pool that serializes them.",
        evidence={"run_id": run.run_id, "pairs": serial_pairs[:10], "steps_wall_s": round(actual, 3),
                  "parallel_wall_s": round(simulated, 3), "cores": cores},
        estimated_gain_s=round(saving, 3),
    )]


def rule_batch_partitions(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    """Many single-partition runs of one job whose time is mostly fixed cost: batch them."""
    out = []
    by_job: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.partitions == 1 and r.partition_range and r.steps:
            by_job[r.job].append(r)
    for job, rs in by_job.items():
        if len(rs) < BATCH_MIN_RUNS:
            continue
        fixed = [max(0.0, r.wall_s - sum(_data_work_s(s) for s in r.steps)) for r in rs]
        walls = [r.wall_s for r in rs]
        share = statistics.median(f / w for f, w in zip(fixed, walls, strict=True) if w > 0) if any(walls) else 0.0
        if share < BATCH_FIXED_SHARE:
            continue
        gain = (len(rs) - 1) * statistics.median(fixed)
        keys = sorted(r.partition_range for r in rs)
        out.append(Recommendation(
            rule="batch_partitions", severity="warning",
            title=f"{len(rs)} single-partition runs of {job}: {share:.0%} of each run is fixed cost",
            action=f"Launch the range {keys[0]}..{keys[-1]} as one run (single-run backfill: the assets "
                   "declare BackfillPolicy.single_run(); pick 'single run' when launching the backfill, or "
                   "request a partition range). Fixed costs are then paid once.",
            evidence={"job": job, "runs": len(rs), "partitions": keys[:31],
                      "median_run_wall_s": round(statistics.median(walls), 3),
                      "median_fixed_s": round(statistics.median(fixed), 3), "fixed_share": round(share, 3),
                      "total_wall_s": round(sum(walls), 3)},
            estimated_gain_s=round(gain, 3),
        ))
    return out


def _series(runs: list[RunRecord]) -> dict[str, list[StepRecord]]:
    series: dict[str, list[StepRecord]] = defaultdict(list)
    for r in runs:
        for s in r.steps:
            if s.status == "SUCCESS":
                series[s.step_key].append(s)
    return series


def fit_exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(time) on log(rows)."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def rule_scaling(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    out = []
    for key, steps in _series(runs).items():
        pts = [(float(s.metrics.get("rows_in") or s.rows or 0), s.duration_s) for s in steps]
        pts = [p for p in pts if p[0] > 0 and p[1] >= MIN_STEP_S / 5]
        if len(pts) < SCALING_MIN_POINTS:
            continue
        xs = [p[0] for p in pts]
        if max(xs) / min(xs) < SCALING_MIN_SPREAD:
            continue
        b = fit_exponent(pts)
        if b is None or b <= SCALING_EXPONENT:
            continue
        smallest, biggest = min(pts), max(pts)
        linear = smallest[1] * biggest[0] / smallest[0]  # the biggest run's time if it scaled linearly
        out.append(Recommendation(
            rule="superlinear_scaling", severity="warning", step=key,
            title=f"{key}: time grows as rows^{b:.2f}, faster than its data",
            action="Look for a join fan-out, a global sort or window, or row-by-row Python in this step; "
                   "aggregate before joining, push the work into SQL, or split it by partition.",
            evidence={"exponent": round(b, 3), "points": [{"rows": int(x), "seconds": round(y, 3)} for x, y in sorted(pts)][:20]},
            estimated_gain_s=round(max(0.0, biggest[1] - linear), 3),
        ))
    return out


def rule_regression(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    out = []
    latest = runs[-1]
    series = _series(runs[:-1])
    for s in latest.steps:
        if s.status != "SUCCESS":
            continue
        prior = [p.duration_s for p in series.get(s.step_key, []) if p.partitions == s.partitions]
        if len(prior) < REGRESSION_MIN_HISTORY:
            continue
        med = statistics.median(prior)
        if s.duration_s > REGRESSION_FACTOR * med and s.duration_s - med > REGRESSION_MIN_S:
            out.append(Recommendation(
                rule="regression", severity="warning", step=s.step_key,
                title=f"{s.step_key} took {s.duration_s:.1f}s, {s.duration_s / med:.1f}x its usual {med:.1f}s",
                action="Compare this run's input size, query plan and code version with the previous runs of the step.",
                evidence={"run_id": latest.run_id, "seconds": s.duration_s, "median_before_s": round(med, 3),
                          "history": [round(x, 3) for x in prior[-10:]], "rows": s.rows},
                estimated_gain_s=round(s.duration_s - med, 3),
            ))
    return out


def rule_retries(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    retried: dict[str, list[StepRecord]] = defaultdict(list)
    for r in runs:
        for s in r.steps:
            if s.attempts > 1:
                retried[s.step_key].append(s)
    out = []
    for key, ss in retried.items():
        cost = sum(s.failed_attempts_s for s in ss)
        runs_with = len({s.run_id for s in ss})
        out.append(Recommendation(
            rule="retries", severity="warning" if runs_with > 1 else "info", step=key,
            title=f"{key} needed retries in {runs_with} run(s); failed attempts cost {cost:.1f}s",
            action="Find the transient cause (lock contention, network, throttling) in the failed attempts' logs; "
                   "a step that keeps retrying is flaky, not unlucky.",
            evidence={"retried_runs": runs_with, "attempts": [s.attempts for s in ss][-10:], "failed_attempts_s": round(cost, 3)},
            estimated_gain_s=round(cost, 3),
        ))
    return out


def rule_memory(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    out = []
    mem = float(machine.get("memory_mib") or 0)
    worst: dict[str, StepRecord] = {}
    for r in runs:
        for s in r.steps:
            peak = s.metrics.get("peak_rss_mib")
            if isinstance(peak, (int, float)) and (s.step_key not in worst or peak > worst[s.step_key].metrics["peak_rss_mib"]):
                worst[s.step_key] = s
    for key, s in worst.items():
        peak = float(s.metrics["peak_rss_mib"])
        growth = peak - float(s.metrics.get("rss_start_mib") or 0)
        data_mib = max(float(s.metrics.get("bytes_in") or 0), float(s.bytes_written or 0)) / 2**20
        if mem and peak >= MEMORY_CRITICAL_SHARE * mem:
            sev = "critical"
        elif mem and peak >= MEMORY_WARNING_SHARE * mem:
            sev = "warning"
        elif growth >= MEMORY_MIN_MIB and data_mib and growth > MEMORY_DATA_FACTOR * data_mib:
            sev = "warning"
        else:
            continue
        out.append(Recommendation(
            rule="memory", severity=sev, step=key,
            title=f"{key} peaked at {peak:.0f} MiB ({peak / mem:.0%} of the machine)" if mem else f"{key} peaked at {peak:.0f} MiB",
            action="Keep the data out of Python: pass lake handles or table names between steps, stream Arrow "
                   "record batches, and let DuckDB/PostgreSQL do the work (pandas holds several copies of a frame).",
            evidence={"run_id": s.run_id, "peak_rss_mib": peak, "growth_mib": round(growth, 1), "data_mib": round(data_mib, 1),
                      "machine_memory_mib": mem},
        ))
    return out


def rule_partition_too_large(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    out = []
    for key, steps in _series(runs).items():
        per_partition = [s.duration_s / max(1, s.partitions) for s in steps]
        if per_partition and max(per_partition) > PARTITION_TOO_LONG_S:
            out.append(Recommendation(
                rule="partition_too_large", severity="warning", step=key,
                title=f"{key}: one partition takes {max(per_partition) / 60:.0f} min",
                action="Use a finer partition grain (e.g. hourly) so a retry or a backfill redoes less work.",
                evidence={"max_partition_s": round(max(per_partition), 1)},
            ))
    return out


def rule_full_scans(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    out = []
    seen = set()
    for r in runs[-5:]:
        for s in r.steps:
            for plan in s.metrics.get("plan") or []:
                for scan in plan.get("scans", []):
                    scanned, returned = scan.get("rows_scanned", 0), scan.get("rows_out", 0)
                    if scanned >= SCAN_LARGE_ROWS and scan.get("filtered") and returned < SCAN_SELECTIVE * scanned:
                        if (s.step_key, scan.get("table")) in seen:
                            continue
                        seen.add((s.step_key, scan.get("table")))
                        out.append(Recommendation(
                            rule="full_scan", severity="warning", step=s.step_key,
                            title=f"{s.step_key} scanned {scanned:,} rows of {scan.get('table')} to keep {returned:,}",
                            action="Let the filter prune: filter on the partition column, sort/cluster the table by the "
                                   "filter column so zone maps skip row groups (DuckDB), or add an index (PostgreSQL).",
                            evidence={"plan": plan.get("label"), **scan},
                            estimated_gain_s=round(float(scan.get("seconds") or 0) * (1 - returned / scanned), 3),
                        ))
    return out


def rule_lake_files(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    out = []
    latest: dict[str, StepRecord] = {}
    files_total: dict[str, int] = defaultdict(int)
    bytes_total: dict[str, int] = defaultdict(int)
    for r in runs:
        for s in r.steps:
            if s.files_written and s.bytes_written:
                latest[s.step_key] = s
                files_total[s.step_key] += s.files_written
                bytes_total[s.step_key] += s.bytes_written
    for key, s in latest.items():
        avg = bytes_total[key] / files_total[key]
        if files_total[key] >= SMALL_FILES_MIN and avg < SMALL_FILE_BYTES:
            out.append(Recommendation(
                rule="small_files", severity="info", step=key,
                title=f"{key} wrote {files_total[key]} files averaging {avg / 2**10:.0f} KiB",
                action="Compact small partitions (e.g. monthly files) or use a coarser partition grain: readers pay "
                       "a fixed cost per file.",
                evidence={"files": files_total[key], "avg_bytes": round(avg)},
            ))
        raw = s.metrics.get("bytes_in")
        if isinstance(raw, (int, float)) and raw > 0 and s.rows and (s.metrics.get("rows_in") or 0) >= 0.9 * s.rows:
            reduction = 1 - s.bytes_written / raw
            ok = reduction >= COMPRESSION_TARGET
            out.append(Recommendation(
                rule="compression", severity="info" if ok else "warning", step=key,
                title=f"{key}: Parquet is {reduction:.0%} smaller than its raw input "
                      f"({'meets' if ok else 'misses'} the {COMPRESSION_TARGET:.0%} target)",
                action="Nothing to do." if ok else "Use zstd, dictionary-encode repetitive strings, sort by a "
                       "low-cardinality column before writing, and drop columns nobody reads.",
                evidence={"raw_bytes": int(raw), "parquet_bytes": s.bytes_written, "reduction": round(reduction, 3)},
            ))
    return out


RULES = [
    rule_batch_partitions, rule_serial_independent, rule_memory, rule_regression, rule_scaling,
    rule_retries, rule_partition_too_large, rule_full_scans, rule_lake_files, rule_slowest_steps,
]


def analyze(runs: list[RunRecord], machine: dict) -> list[Recommendation]:
    if not runs:
        return []
    recs: list[Recommendation] = []
    for rule in RULES:
        recs.extend(rule(runs, machine))
    return sorted(recs, key=lambda r: (SEVERITY_ORDER[r.severity], -(r.estimated_gain_s or 0.0), r.rule))


def summary(runs: list[RunRecord]) -> dict:
    """The figures `--compare` puts side by side."""
    steps: dict[str, float] = defaultdict(float)
    peak = 0.0
    for r in runs:
        for s in r.steps:
            steps[s.step_key] += s.duration_s
            p = s.metrics.get("peak_rss_mib")
            if isinstance(p, (int, float)):
                peak = max(peak, float(p))
    slowest = max(steps.items(), key=lambda kv: kv[1], default=(None, 0.0))
    starts = [r.start for r in runs if r.start]
    ends = [r.end for r in runs if r.end]
    return {
        "runs": len(runs),
        "total_runtime_s": round(sum(r.wall_s for r in runs), 3),
        "span_s": round(max(ends) - min(starts), 3) if starts and ends else None,
        "slowest_step": {"step": slowest[0], "seconds": round(slowest[1], 3)},
        "peak_rss_mib": round(peak, 1),
        "steps": {k: round(v, 3) for k, v in sorted(steps.items())},
    }
