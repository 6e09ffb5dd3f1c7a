"""Event-time windows over the stream, kept in the warehouse and updated per micro-batch.

Semantics (the tests hold them against an independent reference implementation):
- The watermark is the event time every stream partition has reached (the smallest, over the
  source's partitions, of each one's largest accepted event time) minus the allowed lateness,
  as Flink keeps it: a partition read ahead of the others (a backlog is consumed partition by
  partition) does not make the others' events late. A partition that delivered nothing for
  `idle_timeout` (processing time) is left out until it delivers again, so an empty or quiet
  partition does not hold the watermark back for ever (Flink's `withIdleness`). The watermark
  never goes back, and moves only at the end of a micro-batch, so every event of a batch is
  judged against the watermark the previous batches left (Spark Structured Streaming's rule).
- An event is *late* when its event time is before that watermark: it goes to
  `stream.late_events` with how late it was, and no window changes. Any other event is
  *accepted* into `stream.user_events` (one row per event_id: a redelivery changes nothing) and
  every window it falls in is recomputed from the accepted events, so a replayed batch
  rewrites the same rows.
- Windows: tumbling page views per user per 5 minutes; hopping purchases and revenue over
  15 minutes every 5 minutes; sessions per user closed by 30 minutes (configurable) without
  events. A session recomputation starts at the earliest session an accepted event can touch,
  so an out-of-order event that bridges two sessions merges them.
Everything runs as SQL in one transaction of the warehouse session (DuckDB or PostgreSQL).
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from dataeng_assets.lib.warehouse import Session

SCHEMA = "stream"
STREAM = "user_events"
TUMBLE_SECONDS = 300  # pageviews_5m
HOP_SIZE_SECONDS, HOP_EVERY_SECONDS = 900, 300  # purchases_15m
EVENT_COLUMNS = ["event_id", "user_id", "session_id", "event_type", "event_time", "amount", "revenue_category",
                 "is_high_value", "hour_of_day", "day_of_week", "processed_at"]
INPUT_COLUMNS = [*EVENT_COLUMNS, "stream_partition"]
EMITTED = "*"  # the partition_watermarks row of what the watermark has reached

_EVENT_DDL = ("event_id TEXT NOT NULL, user_id BIGINT, session_id TEXT, event_type TEXT, event_time TIMESTAMPTZ, "
              "amount DOUBLE PRECISION, revenue_category TEXT, is_high_value BOOLEAN, hour_of_day INTEGER, "
              "day_of_week INTEGER, processed_at TIMESTAMPTZ")
_DDL = {  # table -> (columns, key)
    "user_events": (_EVENT_DDL, "event_id"),
    "late_events": (f"{_EVENT_DDL}, watermark TIMESTAMPTZ, late_by_seconds DOUBLE PRECISION, received_at TIMESTAMPTZ",
                    "event_id"),
    # per source partition; the row of partition '*' holds the event time the watermark has reached
    "partition_watermarks": ("stream TEXT NOT NULL, stream_partition TEXT NOT NULL, max_event_time TIMESTAMPTZ, "
                             "last_active_at TIMESTAMPTZ", "stream, stream_partition"),
    "pageviews_5m": ("user_id BIGINT NOT NULL, window_start TIMESTAMPTZ NOT NULL, window_end TIMESTAMPTZ, "
                     "page_views BIGINT, updated_at TIMESTAMPTZ", "user_id, window_start"),
    "purchases_15m": ("window_start TIMESTAMPTZ NOT NULL, window_end TIMESTAMPTZ, purchases BIGINT, "
                      "revenue DOUBLE PRECISION, buyers BIGINT, updated_at TIMESTAMPTZ", "window_start"),
    "sessions": ("user_id BIGINT NOT NULL, session_start TIMESTAMPTZ NOT NULL, session_end TIMESTAMPTZ, "
                 "duration_seconds DOUBLE PRECISION, events BIGINT, page_views BIGINT, purchases BIGINT, "
                 "revenue DOUBLE PRECISION, updated_at TIMESTAMPTZ", "user_id, session_start"),
}


def _floor(ts: str, seconds: int, minus: str = "0") -> str:
    """The start of the `seconds`-long bucket holding `ts`, `minus` buckets earlier (both engines)."""
    return f"to_timestamp((floor(extract(epoch FROM {ts}) / {seconds}) - {minus}) * {seconds})"


@dataclass(frozen=True)
class WindowSettings:
    lateness: dt.timedelta = dt.timedelta(minutes=10)
    session_gap: dt.timedelta = dt.timedelta(minutes=30)
    idle_timeout: dt.timedelta = dt.timedelta(minutes=5)


@dataclass
class WindowResult:
    accepted: int = 0
    late: int = 0
    watermark_before: dt.datetime | None = None
    watermark: dt.datetime | None = None


def key_clause(dialect: str, key: str) -> str:
    """PostgreSQL enforces the key with a B-tree. DuckDB would serialize the whole ART index at
    every commit (a micro-batch's commit grew from 0.4 to 4 s over 1M events); there the key is
    kept by the one writer's delete-then-insert and anti-joins, and the tests check it."""
    return f", PRIMARY KEY ({key})" if dialect == "postgres" else ""


def ensure_window_tables(s: Session) -> None:
    s.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table, (columns, key) in _DDL.items():
        s.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({columns}{key_clause(s.dialect, key)})")
    if s.dialect == "postgres":  # window recomputation reads a user's events by time
        s.execute(f"CREATE INDEX IF NOT EXISTS user_events_user_time ON {SCHEMA}.user_events (user_id, event_time)")


def apply_windows(s: Session, events: pa.Table, settings: WindowSettings, now: dt.datetime,
                  partitions: Sequence[str] = ()) -> WindowResult:
    """Accept or reject (late) the batch's good events and update every window they touch, in one
    transaction. `events` has INPUT_COLUMNS, one row per event_id; `partitions` are all of the
    source's (stream_partition values): until each active one has delivered an event there is no
    watermark and nothing is late; one silent for `settings.idle_timeout` is left out.

    A replay after a crash is judged against a watermark at least as far as the first attempt's
    (it never goes back), so what was late stays late and what was accepted is already seen."""
    out = WindowResult()
    if not events.num_rows:
        return out
    with s.transaction():
        ensure_window_tables(s)
        s.stage_arrow("__stream_in", events.select(INPUT_COLUMNS))
        wm = f"{SCHEMA}.partition_watermarks"
        s.execute("CREATE TEMP TABLE __active AS SELECT DISTINCT stream_partition FROM __stream_in")
        for p in [*partitions, EMITTED]:  # registering a partition starts its idleness clock
            s.execute(f"INSERT INTO {wm} SELECT $1, $2, NULL, $3 WHERE NOT EXISTS "
                      f"(SELECT 1 FROM {wm} WHERE stream = $1 AND stream_partition = $2)", [STREAM, p, now])
        s.execute(f"INSERT INTO {wm} SELECT $1, stream_partition, NULL, $2 FROM __active a WHERE NOT EXISTS "
                  f"(SELECT 1 FROM {wm} w WHERE w.stream = $1 AND w.stream_partition = a.stream_partition)", [STREAM, now])
        s.execute(f"UPDATE {wm} SET last_active_at = $2 WHERE stream = $1 AND stream_partition IN "
                  "(SELECT stream_partition FROM __active)", [STREAM, now])
        max_before = _reached(s, now - settings.idle_timeout)
        out.watermark_before = max_before - settings.lateness if max_before is not None else None
        s.execute(f"CREATE TEMP TABLE __stream_new AS SELECT i.* FROM __stream_in i WHERE NOT EXISTS "
                  f"(SELECT 1 FROM {SCHEMA}.user_events e WHERE e.event_id = i.event_id)")
        cols = ", ".join(EVENT_COLUMNS)
        if out.watermark_before is not None:
            late = "event_time < $1"
            s.execute(f"DELETE FROM {SCHEMA}.late_events WHERE event_id IN (SELECT event_id FROM __stream_new WHERE {late})",
                      [out.watermark_before])
            out.late = s.rowcount(
                f"INSERT INTO {SCHEMA}.late_events SELECT {cols}, $1, extract(epoch FROM $1 - event_time), $2 "
                f"FROM __stream_new WHERE {late}", [out.watermark_before, now])
            s.execute(f"DELETE FROM __stream_new WHERE {late}", [out.watermark_before])
        out.accepted = s.rowcount(f"INSERT INTO {SCHEMA}.user_events ({cols}) SELECT {cols} FROM __stream_new")
        if out.accepted:
            _update_windows(s, settings, now)
            s.execute(f"DELETE FROM {SCHEMA}.late_events WHERE event_id IN (SELECT event_id FROM __stream_new)")
            s.execute(f"UPDATE {wm} SET max_event_time = m.t FROM (SELECT stream_partition, max(event_time) AS t "
                      f"FROM __stream_new GROUP BY stream_partition) m WHERE {wm}.stream = $1 "
                      f"AND {wm}.stream_partition = m.stream_partition "
                      f"AND ({wm}.max_event_time IS NULL OR {wm}.max_event_time < m.t)", [STREAM])
        max_after = _reached(s, now - settings.idle_timeout)
        if max_after is not None:  # remembered, so the watermark never goes back
            s.execute(f"UPDATE {wm} SET max_event_time = $2, last_active_at = $3 WHERE stream = $1 "
                      "AND stream_partition = $4", [STREAM, max_after, now, EMITTED])
        out.watermark = max_after - settings.lateness if max_after is not None else None
        for t in ("__stream_in", "__stream_new", "__active"):
            s.execute(f"DROP TABLE {t}")
    return out


def _reached(s: Session, active_since: dt.datetime) -> dt.datetime | None:
    """The event time the watermark has reached: the smallest latest event time over the
    partitions active since `active_since` (none while one of them has no events yet), and never
    below what it reached before."""
    part = "stream_partition <> $2"
    current, emitted = s.fetchone(
        f"SELECT CASE WHEN count(*) FILTER (WHERE {part}) = count(max_event_time) FILTER (WHERE {part}) "
        f"THEN min(max_event_time) FILTER (WHERE {part}) END, "
        "max(max_event_time) FILTER (WHERE stream_partition = $2) "
        f"FROM {SCHEMA}.partition_watermarks WHERE stream = $1 AND (stream_partition = $2 OR last_active_at >= $3)",
        [STREAM, EMITTED, active_since])
    if current is None or (emitted is not None and emitted > current):
        return emitted
    return current


def _update_windows(s: Session, settings: WindowSettings, now: dt.datetime) -> None:
    """Recompute every window an event of `__stream_new` falls in from all accepted events."""
    ev = f"{SCHEMA}.user_events"
    # tumbling: page views per user per 5 minutes
    s.execute(f"CREATE TEMP TABLE __touched AS SELECT DISTINCT user_id, {_floor('event_time', TUMBLE_SECONDS)} "
              "AS window_start FROM __stream_new WHERE event_type = 'page_view'")
    s.execute(f"DELETE FROM {SCHEMA}.pageviews_5m WHERE (user_id, window_start) IN (SELECT user_id, window_start FROM __touched)")
    s.execute(
        f"INSERT INTO {SCHEMA}.pageviews_5m SELECT t.user_id, t.window_start, t.window_start + $1, count(*), $2 "
        f"FROM __touched t JOIN {ev} e ON e.user_id = t.user_id AND e.event_type = 'page_view' "
        "AND e.event_time >= t.window_start AND e.event_time < t.window_start + $1 GROUP BY t.user_id, t.window_start",
        [dt.timedelta(seconds=TUMBLE_SECONDS), now])
    s.execute("DROP TABLE __touched")
    # hopping: purchases and revenue over 15 minutes, every 5 minutes (each event is in 3 windows)
    hops = HOP_SIZE_SECONDS // HOP_EVERY_SECONDS
    values = ", ".join(f"({n})" for n in range(hops))
    s.execute(f"CREATE TEMP TABLE __touched AS SELECT DISTINCT {_floor('n.event_time', HOP_EVERY_SECONDS, 'k.n')} "
              f"AS window_start FROM __stream_new n CROSS JOIN (VALUES {values}) AS k(n) WHERE n.event_type = 'purchase'")
    s.execute(f"DELETE FROM {SCHEMA}.purchases_15m WHERE window_start IN (SELECT window_start FROM __touched)")
    s.execute(
        f"INSERT INTO {SCHEMA}.purchases_15m SELECT t.window_start, t.window_start + $1, count(*), "
        f"coalesce(sum(e.amount), 0), count(DISTINCT e.user_id), $2 FROM __touched t JOIN {ev} e "
        "ON e.event_type = 'purchase' AND e.event_time >= t.window_start AND e.event_time < t.window_start + $1 "
        "GROUP BY t.window_start", [dt.timedelta(seconds=HOP_SIZE_SECONDS), now])
    s.execute("DROP TABLE __touched")
    # sessions: from the earliest session a new event can join (one ending within the gap
    # before the user's earliest new event, or later), all of the user's sessions are rebuilt
    s.execute(f"CREATE TEMP TABLE __touched AS SELECT u.user_id, min(coalesce(x.session_start, u.first_new)) AS since "
              "FROM (SELECT user_id, min(event_time) AS first_new FROM __stream_new GROUP BY user_id) u "
              f"LEFT JOIN {SCHEMA}.sessions x ON x.user_id = u.user_id AND x.session_end >= u.first_new - $1 "
              "AND x.session_start < u.first_new GROUP BY u.user_id", [settings.session_gap])
    s.execute(f"DELETE FROM {SCHEMA}.sessions WHERE EXISTS (SELECT 1 FROM __touched t "
              f"WHERE t.user_id = {SCHEMA}.sessions.user_id AND {SCHEMA}.sessions.session_start >= t.since)")
    s.execute(
        f"""INSERT INTO {SCHEMA}.sessions
        WITH events_since AS (
            SELECT e.user_id, e.event_id, e.event_time, e.event_type, e.amount,
                   CASE WHEN e.event_time - lag(e.event_time) OVER w <= $1 THEN 0 ELSE 1 END AS starts_session
            FROM {ev} e JOIN __touched t ON e.user_id = t.user_id AND e.event_time >= t.since
            WINDOW w AS (PARTITION BY e.user_id ORDER BY e.event_time, e.event_id)
        ),
        numbered AS (
            SELECT *, sum(starts_session) OVER (PARTITION BY user_id ORDER BY event_time, event_id
                                                ROWS UNBOUNDED PRECEDING) AS session_no
            FROM events_since
        )
        SELECT user_id, min(event_time), max(event_time), extract(epoch FROM max(event_time) - min(event_time)),
               count(*), count(*) FILTER (WHERE event_type = 'page_view'),
               count(*) FILTER (WHERE event_type = 'purchase'),
               coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0), $2
        FROM numbered GROUP BY user_id, session_no""",
        [settings.session_gap, now])
    s.execute("DROP TABLE __touched")
