"""Read one finished run from the Dagster instance into plain records, and keep them durably.

Per run: `get_run_stats`, `get_run_step_stats` (status, start/end, attempts with their own
times: a step's STEP_SUCCESS duration covers only its last attempt), and the run's own event
log (materializations, our step-metrics observations, check evaluations). One run per call:
the sensor never scans the whole event log.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from dataeng_assets.lib.stepstats import OBSERVATION_TAG

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


@dataclass
class StepRecord:
    run_id: str
    job: str
    step_key: str
    status: str
    start: float | None
    end: float | None
    duration_s: float
    attempts: int
    failed_attempts_s: float
    assets: list[str] = field(default_factory=list)
    upstream_steps: list[str] = field(default_factory=list)
    partitions: int = 1
    rows: int | None = None
    bytes_written: int | None = None
    files_written: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # the step_metrics observation
    pool: str | None = None  # the concurrency pool the step's op runs in (serializes its members)


@dataclass
class RunRecord:
    run_id: str
    job: str
    status: str
    start: float | None
    end: float | None
    wall_s: float
    partition_range: str | None
    partitions: int
    steps: list[StepRecord] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> RunRecord:
        steps = [StepRecord(**s) for s in d.get("steps", [])]
        return RunRecord(**{**d, "steps": steps})


def _value(v):
    return getattr(v, "value", v)


def _partitions(tags: dict) -> tuple[str | None, int]:
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        from datetime import date

        try:
            a, b = date.fromisoformat(tags[RANGE_START_TAG][:10]), date.fromisoformat(tags[RANGE_END_TAG][:10])
            return f"{tags[RANGE_START_TAG]}..{tags[RANGE_END_TAG]}", (b - a).days + 1
        except ValueError:
            return f"{tags[RANGE_START_TAG]}..{tags[RANGE_END_TAG]}", 1
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG], 1
    return None, 1


def collect_run(instance: dg.DagsterInstance, run_id: str, asset_graph=None) -> RunRecord | None:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return None
    stats = instance.get_run_stats(run_id)
    prange, nparts = _partitions(dict(run.tags))
    record = RunRecord(
        run_id=run_id, job=run.job_name, status=run.status.value,
        start=stats.start_time, end=stats.end_time,
        wall_s=round((stats.end_time or 0) - (stats.start_time or 0), 4) if stats.start_time else 0.0,
        partition_range=prange, partitions=nparts,
    )
    assets_of: dict[str, list[str]] = {}
    md_of: dict[str, dict] = {}
    metrics_of: dict[str, dict] = {}
    for entry in instance.all_logs(run_id, of_type={
        dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_OBSERVATION,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    }):
        ev = entry.dagster_event
        if ev is None or not ev.step_key:
            continue
        data = ev.event_specific_data
        if ev.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = data.materialization
            key = mat.asset_key.to_user_string()
            if key not in assets_of.setdefault(ev.step_key, []):
                assets_of[ev.step_key].append(key)
                # A range run repeats the same output metadata once per partition: count it once.
                agg = md_of.setdefault(ev.step_key, {"rows": 0, "bytes": 0, "files": 0})
                md = {k: _value(v) for k, v in mat.metadata.items()}
                for src, dst in (("row_count", "rows"), ("bytes", "bytes"), ("files", "files")):
                    if isinstance(md.get(src), int):
                        agg[dst] += md[src]
        elif ev.event_type == dg.DagsterEventType.ASSET_OBSERVATION:
            obs = data.asset_observation
            if obs.tags.get(OBSERVATION_TAG):
                metrics_of.setdefault(ev.step_key, {k: _value(v) for k, v in obs.metadata.items()})
        elif ev.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            key = data.asset_key.to_user_string()
            assets_of.setdefault(ev.step_key, [])
            # a check step depends on its asset's step; remember the asset as "checked:<key>"
            if f"checked:{key}" not in assets_of[ev.step_key]:
                assets_of[ev.step_key].append(f"checked:{key}")
    producer = {a: s for s, assets in assets_of.items() for a in assets if not a.startswith("checked:")}
    for st in instance.get_run_step_stats(run_id):
        attempts = list(st.attempts_list or [])
        failed = sum((m.end_time or 0) - (m.start_time or 0) for m in attempts[:-1] if m.start_time)
        assets = assets_of.get(st.step_key, [])
        upstream: set[str] = set()
        pool = None
        for a in assets:
            if a.startswith("checked:"):
                if a[8:] in producer:
                    upstream.add(producer[a[8:]])
            elif asset_graph is not None:
                try:
                    node = asset_graph.get(dg.AssetKey.from_user_string(a))
                    parents = node.parent_keys
                    pool = pool or getattr(node.assets_def.op, "pool", None)
                except Exception:  # noqa: BLE001 - an asset no longer defined: no edges
                    parents = set()
                upstream |= {producer[p.to_user_string()] for p in parents if p.to_user_string() in producer}
        upstream.discard(st.step_key)
        agg = md_of.get(st.step_key, {})
        record.steps.append(StepRecord(
            run_id=run_id, job=run.job_name, step_key=st.step_key, status=st.status.value if st.status else "UNKNOWN",
            start=st.start_time, end=st.end_time,
            duration_s=round((st.end_time or 0) - (st.start_time or 0), 4) if st.start_time else 0.0,
            attempts=max(1, len(attempts) or st.attempts or 1), failed_attempts_s=round(failed, 4),
            assets=[a for a in assets if not a.startswith("checked:")] or assets,
            upstream_steps=sorted(upstream), partitions=nparts,
            rows=agg.get("rows") or None, bytes_written=agg.get("bytes") or None, files_written=agg.get("files") or None,
            metrics=metrics_of.get(st.step_key, {}), pool=pool,
        ))
    record.steps.sort(key=lambda s: (s.start or 0, s.step_key))
    return record


# ------------------------------------------------------------------ durable history
def history_path() -> Path:
    from dataeng_assets.lib import env

    return env.data_home() / "optimizer" / "history.sqlite"


class History:
    """Runs and their steps in a SQLite file in the data home (SQLite: safe for the sensor, the
    CLI and the report to share from several processes). Keyed by run; re-recording a run
    replaces it, so the sensor is idempotent."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else history_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, job TEXT, status TEXT, "
                "start REAL, end_ REAL, wall_s REAL, partition_range TEXT, record TEXT)"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS steps (run_id TEXT, step_key TEXT, asset TEXT, "
                "partition_range TEXT, duration_s REAL, rows INTEGER, peak_rss_mib REAL, "
                "PRIMARY KEY (run_id, step_key))"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        return conn

    def record(self, run: RunRecord) -> None:
        with self._conn() as c:
            c.execute("DELETE FROM steps WHERE run_id = ?", [run.run_id])
            c.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [run.run_id, run.job, run.status, run.start, run.end, run.wall_s, run.partition_range,
                 json.dumps(run.to_dict(), default=str)],
            )
            c.executemany(
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)",
                [[s.run_id, s.step_key, ",".join(s.assets), run.partition_range, s.duration_s, s.rows,
                  s.metrics.get("peak_rss_mib")] for s in run.steps],
            )

    def runs(self, limit: int | None = None, since: float | None = None) -> list[RunRecord]:
        sql = "SELECT record FROM runs" + (" WHERE start >= ?" if since else "") + " ORDER BY start DESC"
        params: list = [since] if since else []
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        with self._conn() as c:
            rows = c.execute(sql, params).fetchall()
        return [RunRecord.from_dict(json.loads(r[0])) for r in reversed(rows)]


def collect_recent(instance: dg.DagsterInstance, limit: int = 20, since: float | None = None,
                   asset_graph=None, exclude_jobs: Iterable[str] = ()) -> list[RunRecord]:
    """The last finished runs straight from the instance (what `dataeng optimize` reads)."""
    finished = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=finished), limit=limit * 3 if exclude_jobs else limit)
    out = []
    for run in runs:
        if run.job_name in exclude_jobs:
            continue
        rec = collect_run(instance, run.run_id, asset_graph)
        if rec and (since is None or (rec.start or 0) >= since):
            out.append(rec)
        if len(out) >= limit:
            break
    return sorted(out, key=lambda r: r.start or 0)


def machine() -> dict:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = 0
    return {"cores": os.cpu_count() or 1, "memory_mib": round(mem / 2**20)}
