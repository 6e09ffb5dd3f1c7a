"""What every step records for the optimizer, so assets stay clean.

Open-source Dagster records step start/end and attempts, but no memory, CPU or query figures.
`step_metrics` measures a step body (including the IO manager's handling of outputs yielded
inside it) and logs one `AssetObservation` per asset with:

- `step_wall_s`, `cpu_s` (process user+sys during the step), `python_s` = wall − warehouse time;
- `peak_rss_mib`: the process RSS high-water mark *during the step*, sampled every 50 ms by a
  thread (`resource.getrusage` gives the process's lifetime maximum, which in the in-process
  executor would carry one step's peak into every later step); `rss_start_mib` for the baseline;
- `warehouse_s`: time spent inside SQL the step timed with `metrics.sql(...)`;
- `rows_in`, `bytes_in` where the step reports them, and a summarized query plan of its heavy SQL
  (`plan`: per scan, the table, rows scanned vs rows out, whether a filter applied).
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

SAMPLE_EVERY_S = 0.05
OBSERVATION_TAG = "dataeng/step_metrics"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the lifetime high-water mark
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True, name="dataeng-rss-sampler")
        self.peak = _rss_bytes()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(SAMPLE_EVERY_S):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._halt.set()
        self.join(timeout=1)
        self.peak = max(self.peak, _rss_bytes())
        return self.peak


@dataclass
class StepMetrics:
    warehouse_s: float = 0.0
    rows_in: int | None = None
    bytes_in: int | None = None
    plans: list[dict] = field(default_factory=list)

    @contextmanager
    def sql(self, label: str, con=None) -> Iterator[None]:
        """Time a block of warehouse/DuckDB work; with a DuckDB connection, keep its plan summary.

        The connection must have profiling on (`profiled(con)`); the plan is that of the last query
        the block ran.
        """
        started = time.perf_counter()
        try:
            yield
        finally:
            self.warehouse_s += time.perf_counter() - started
            if con is not None:
                plan = duckdb_plan_summary(con)
                if plan:
                    self.plans.append({"label": label, **plan})

    def input(self, rows: int | None = None, nbytes: int | None = None) -> None:
        if rows is not None:
            self.rows_in = (self.rows_in or 0) + int(rows)
        if nbytes is not None:
            self.bytes_in = (self.bytes_in or 0) + int(nbytes)


@contextmanager
def step_metrics(context, asset_keys: Sequence[dg.AssetKey] | None = None) -> Iterator[StepMetrics]:
    """Measure the enclosed step body; log the figures as observations of its assets."""
    metrics = StepMetrics()
    sampler = _PeakSampler()
    start_rss = sampler.peak
    cpu0 = os.times()
    started = time.perf_counter()
    sampler.start()
    ok = False
    try:
        yield metrics
        ok = True
    finally:
        wall = time.perf_counter() - started
        peak = sampler.stop()
        cpu1 = os.times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        if ok:
            md: dict[str, Any] = {
                "step_wall_s": round(wall, 4),
                "cpu_s": round(cpu, 4),
                "warehouse_s": round(metrics.warehouse_s, 4),
                "python_s": round(max(0.0, wall - metrics.warehouse_s), 4),
                "peak_rss_mib": round(peak / 2**20, 1),
                "rss_start_mib": round(start_rss / 2**20, 1),
                "cpu_count": os.cpu_count() or 1,
            }
            if metrics.rows_in is not None:
                md["rows_in"] = metrics.rows_in
            if metrics.bytes_in is not None:
                md["bytes_in"] = metrics.bytes_in
            if metrics.plans:
                md["plan"] = dg.MetadataValue.json(metrics.plans)
            keys = list(asset_keys) if asset_keys is not None else list(context.selected_asset_keys)
            for key in keys:
                context.log_event(
                    dg.AssetObservation(asset_key=key, metadata=md, tags={OBSERVATION_TAG: "1"})
                )


def profiled(con) -> None:
    """Turn on DuckDB's per-query profile (kept in memory, read by `duckdb_plan_summary`).

    DATAENG_SQL_PROFILE=0 turns it off (it times every operator: measurable on the largest scans).
    """
    if os.environ.get("DATAENG_SQL_PROFILE", "1") == "0":
        return
    try:
        con.execute("PRAGMA enable_profiling = 'no_output'")
    except Exception:  # noqa: BLE001 - profiling is an aid, never a reason to fail a step
        pass


def duckdb_plan_summary(con) -> dict | None:
    """Scans of the last profiled query: table, rows scanned vs out, filter or not, seconds."""
    try:
        profile = json.loads(con.get_profiling_information(format="json"))
    except Exception:  # noqa: BLE001
        return None
    scans: list[dict] = []

    def walk(node: dict) -> None:
        info = node.get("extra_info") or {}
        if "rows_scanned" in node or node.get("type") in ("TABLE_SCAN", "READ_PARQUET", "READ_JSON"):
            scans.append({
                "table": info.get("Table") or info.get("Function") or node.get("name"),
                "rows_scanned": int(node.get("rows_scanned") or node.get("intermediate_rows") or 0),
                "rows_out": int(node.get("intermediate_rows") or 0),
                "filtered": bool(info.get("Filters") or info.get("File Filters")),
                "seconds": round(float(node.get("timing") or 0.0), 4),
            })
        for child in node.get("children", []):
            walk(child)

    for op in profile.get("operator", []):
        walk(op)
    if not scans:
        return None
    return {"engine": "duckdb", "scans": scans}
