"""The durable metric history of every check (the warehouse table quality.check_results) and
the z-score judgement of anomaly rules against it.

One row per asset, check, rule and partition: re-running a partition replaces its rows, so the
history holds the latest evaluation of each partition. Baselines are ordered by partition date,
not run time, so a backfill of old partitions neither sees the future nor shifts the baseline
of recent ones.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from dataeng_assets.lib.warehouse import Session

SCHEMA, TABLE = "quality", "check_results"
COLUMNS = pa.schema([
    ("asset_key", pa.string()), ("check_name", pa.string()), ("rule", pa.string()),
    ("partition_key", pa.string()), ("partition_date", pa.date32()), ("metric", pa.float64()),
    ("passed", pa.bool_()), ("severity", pa.string()), ("observed", pa.string()), ("threshold", pa.string()),
    ("failing_rows", pa.int64()), ("run_id", pa.string()), ("evaluated_at", pa.timestamp("us", tz="UTC")),
])


@dataclass(frozen=True)
class Row:
    asset_key: str
    check_name: str
    rule: str
    partition_key: str
    partition_date: dt.date
    metric: float | None
    passed: bool
    severity: str
    observed: str
    threshold: str
    failing_rows: int
    run_id: str
    evaluated_at: dt.datetime


def record(session: Session, asset_key: str, rows: Sequence[Row]) -> None:
    """Replace this asset's rows for the (check, partition) pairs evaluated, atomically."""
    if not rows:
        return
    table = pa.Table.from_pylist([r.__dict__ for r in rows], schema=COLUMNS)
    checks = sorted({r.check_name for r in rows})
    keys = sorted({r.partition_key for r in rows})
    params: list = [asset_key, *checks, *keys]
    c_marks = ", ".join(f"${i + 2}" for i in range(len(checks)))
    k_marks = ", ".join(f"${i + 2 + len(checks)}" for i in range(len(keys)))
    session.replace_rows(
        SCHEMA, TABLE, table, f"asset_key = $1 AND check_name IN ({c_marks}) AND partition_key IN ({k_marks})", params
    )


def baseline(
    session: Session, asset_key: str, rule: str, before: dt.date, window: int, same_weekday: bool
) -> list[tuple[dt.date, float]]:
    """The metric for the `window` partitions before `before` (newest first), same weekday if asked."""
    if not session.columns(SCHEMA, TABLE):
        return []
    rows = session.execute(
        f"SELECT partition_date, metric FROM {SCHEMA}.{TABLE} WHERE asset_key = $1 AND rule = $2 "
        "AND partition_date < $3 AND metric IS NOT NULL ORDER BY partition_date DESC LIMIT $4",
        [asset_key, rule, before, window * (7 if same_weekday else 1)],
    )
    out = [(d, float(m)) for d, m in rows]
    if same_weekday:
        out = [(d, m) for d, m in out if d.weekday() == before.weekday()]
    return out[:window]


def trend(session: Session, asset_key: str, rule: str, upto: dt.date, n: int = 5) -> list[float]:
    """The last `n` values up to and including `upto`, oldest first (for alerts and the report)."""
    if not session.columns(SCHEMA, TABLE):
        return []
    rows = session.execute(
        f"SELECT metric FROM {SCHEMA}.{TABLE} WHERE asset_key = $1 AND rule = $2 AND partition_date <= $3 "
        "AND metric IS NOT NULL ORDER BY partition_date DESC LIMIT $4",
        [asset_key, rule, upto, n],
    )
    return [float(m) for (m,) in reversed(rows)]


@dataclass(frozen=True)
class Anomaly:
    passed: bool
    z: float | None
    mean: float | None
    std: float | None
    history: int
    reason: str


def judge(value: float | None, history: Sequence[float], z_threshold: float = 2.0, min_history: int = 7,
          direction: str = "both") -> Anomaly:
    """The seed's z-score rule: |z| > threshold is an anomaly, once there is enough history.

    A constant history (stddev 0) makes any change infinitely unlikely: it is flagged unless the
    value equals the constant.
    """
    n = len(history)
    if value is None:
        return Anomaly(True, None, None, None, n, "no value this partition")
    if n < min_history:
        return Anomaly(True, None, None, None, n, f"learning: {n} of {min_history} partitions of history")
    mean = statistics.fmean(history)
    std = statistics.stdev(history) if n > 1 else 0.0
    if std == 0:
        z = 0.0 if value == mean else math.copysign(math.inf, value - mean)
    else:
        z = (value - mean) / std
    flagged = {"both": abs(z) > z_threshold, "spike": z > z_threshold, "drop": z < -z_threshold}[direction]
    word = "spike" if z > 0 else "drop"
    reason = f"{word}: z = {z:+.2f} vs ±{z_threshold}" if flagged else f"z = {z:+.2f} within ±{z_threshold}"
    return Anomaly(not flagged, z, mean, std, n, reason)
