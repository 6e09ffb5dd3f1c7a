"""Micro-batch ingestion of user events: Kafka (or the landing zone's JSONL drops) -> the lake,
with a dead-letter queue, at-least-once delivery and exactly-once results at the sink.

One micro-batch:
1. read up to a record/time budget from where the last committed batch ended;
2. decode, validate and enrich in DuckDB (`sql/stream_events.sql`), never row by row in Python;
3. write the good events into hourly lake partitions, merged with what each partition already
   holds and deduplicated on event_id (each partition published atomically);
4. record the bad ones in the DLQ table (keyed by source position, so a replay replaces them)
   and, with Kafka, on the `events-dlq` topic;
5. only then commit the offsets (or the landing-zone cursor).
A crash anywhere before 5 replays the batch, and steps 3-4 make the replay change nothing.
"""

import datetime as dt
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs

from dataeng_assets.lib import sql
from dataeng_assets.lib.events import scratch_duckdb
from dataeng_assets.lib.lake import PART_FILE, DuckDBQuery, Lake
from dataeng_assets.lib.streaming.windows import (
    EVENT_COLUMNS,
    INPUT_COLUMNS,
    WindowSettings,
    apply_windows,
    key_clause,
)
from dataeng_assets.lib.warehouse import Session, qualified

EVENTS_KEY = ["lake", "stream", "user_events"]
STREAM_SCHEMA = "stream"
DLQ_TABLE = "events_dlq"
CURSOR_TABLE = "ingest_cursor"
DLQ_TOPIC = "events-dlq"
LANDING_PREFIX = "events"
BATCH = pa.schema([("source", pa.string()), ("position", pa.string()), ("payload", pa.string())])
CRASH_VAR = "DATAENG_STREAM_CRASH_AT"  # tests: die (os._exit) at a named point, as a killed consumer would


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_VAR) == name:
        os._exit(17)


@dataclass
class Batch:
    table: pa.Table  # source, position, payload
    commit: object = None  # what to commit after the sink is durable (offsets or files)
    partitions: list[str] = field(default_factory=lambda: ["landing"])  # the source's, for the watermark


@dataclass
class IngestResult:
    read: int = 0
    events: int = 0
    duplicates: int = 0
    dlq: int = 0
    accepted: int = 0  # into the warehouse's windows (events not seen before and not late)
    late: int = 0
    watermark: dt.datetime | None = None
    partitions: list[str] = field(default_factory=list)
    dlq_by_error: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    batches: int = 0

    def add(self, r: "IngestResult") -> None:
        for name in ("read", "events", "duplicates", "dlq", "accepted", "late"):
            setattr(self, name, getattr(self, name) + getattr(r, name))
        self.batches += 1
        self.watermark = r.watermark or self.watermark
        self.partitions = sorted(set(self.partitions) | set(r.partitions))
        self.dlq_by_error = dict(Counter(self.dlq_by_error) + Counter(r.dlq_by_error))


# ---------------------------------------------------------------- sources
class KafkaSource:
    """A consumer on fixed partitions (no group rebalance to wait for), starting at the group's
    committed offsets; auto-commit off: offsets move only in `commit`."""

    def __init__(self, bootstrap: str, topic: str, group: str, extra: dict | None = None):
        from confluent_kafka import Consumer, TopicPartition

        self.topic, self.group, self.bootstrap, self.extra = topic, group, bootstrap, extra or {}
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": True, **self.extra,
        })
        meta = self.consumer.list_topics(topic, timeout=10)
        if meta.topics[topic].error is not None:
            raise RuntimeError(f"Kafka topic {topic}: {meta.topics[topic].error}")
        self.partitions = sorted(meta.topics[topic].partitions)
        committed = self.consumer.committed([TopicPartition(topic, p) for p in self.partitions], timeout=10)
        start = [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else -2) for tp in committed]
        self.consumer.assign(start)
        self._at_end: set[int] = set()  # partitions whose end was reached, with nothing since
        self._producer = None  # for the DLQ and routed topics, made on first use

    def read(self, max_records: int, max_seconds: float) -> Batch:
        from confluent_kafka import KafkaError, KafkaException

        deadline = time.monotonic() + max_seconds
        parts: list[int] = []
        offsets: list[int] = []
        values: list[bytes | None] = []
        while len(values) < max_records and time.monotonic() < deadline:
            caught_up = len(self._at_end) == len(self.partitions)
            wait = 0.2 if caught_up else min(0.5, max(0.05, deadline - time.monotonic()))
            msgs = self.consumer.consume(min(10_000, max_records - len(values)), timeout=wait)
            if not msgs:
                if values or caught_up:
                    break
                continue
            good = [m for m in msgs if m.error() is None]
            for m in msgs if len(good) < len(msgs) else ():
                err = m.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    self._at_end.add(m.partition())
                elif err is not None and err.fatal():
                    raise KafkaException(err)
            chunk_parts = [m.partition() for m in good]
            self._at_end.difference_update(chunk_parts)
            parts += chunk_parts
            offsets += [m.offset() for m in good]
            values += [m.value() for m in good]
        return self._batch(parts, offsets, values)

    def _batch(self, parts: list[int], offsets: list[int], values: list[bytes | None]) -> Batch:
        """Columns built by Arrow, not per message in Python: position = ppppp:oooo (zero-padded,
        so it sorts), payload decoded as UTF-8 (invalid bytes replaced, the DLQ says why)."""
        import pyarrow.compute as pc

        p = pa.array(parts, pa.int32())
        o = pa.array(offsets, pa.int64())
        position = pc.binary_join_element_wise(pc.utf8_lpad(pc.cast(p, pa.string()), 5, "0"), ":",
                                               pc.utf8_lpad(pc.cast(o, pa.string()), 20, "0"))
        raw = pc.fill_null(pa.array(values, pa.binary()), b"")
        try:
            payload = raw.cast(pa.string())
        except pa.ArrowInvalid:  # not UTF-8 somewhere: decode with replacement characters
            payload = pa.array([v.decode("utf-8", errors="replace") for v in raw.to_pylist()], pa.string())
        source = pa.array([self.topic] * len(values), pa.string())
        last = {}
        if values:
            grouped = pa.table({"p": p, "o": o}).group_by("p").aggregate([("o", "max")])
            last = dict(zip(grouped.column("p").to_pylist(), grouped.column("o_max").to_pylist(), strict=True))
        table = pa.table([source, position, payload], schema=BATCH)
        return Batch(table, last, [f"{self.topic}:{q:05d}" for q in self.partitions])

    def lag(self) -> dict[int, dict[str, int]]:
        """Per partition: the group's committed offset, the log end offset and the difference
        (what `kafka-consumer-groups --describe` shows). Tansu reports the end as the last record
        batch's base offset + 1, so there lag is understated by at most the last batch."""
        from confluent_kafka import TopicPartition

        tps = [TopicPartition(self.topic, p) for p in self.partitions]
        committed = {tp.partition: tp.offset for tp in self.consumer.committed(tps, timeout=10)}
        out = {}
        for p in self.partitions:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10, cached=False)
            at = committed[p] if committed[p] >= 0 else low
            out[p] = {"committed": max(committed[p], 0), "end": high, "lag": max(high - at, 0)}
        return out

    def route(self, rows: list[tuple[str, str, str]]) -> None:
        """The seed's router: each enriched event (event_type, event_id, json) to
        `processed-{event_type}`, keyed by event_id (at least once: a replayed batch re-sends)."""
        self._produce((f"processed-{t}", k, v) for t, k, v in rows)

    def _produce(self, messages) -> None:
        """Produce and wait until the broker has every message (one producer per source)."""
        from confluent_kafka import Producer

        messages = list(messages)
        if not messages:
            return
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 20,
                                       **{k: v for k, v in self.extra.items()
                                          if k.startswith(("security", "sasl", "ssl"))}})
        producer = self._producer
        for n, (topic, key, value) in enumerate(messages):
            producer.produce(topic, key=key.encode() if key else None, value=value.encode())
            if n % 10_000 == 0:
                producer.poll(0)
        if producer.flush(30):
            raise TimeoutError("Kafka: messages still unsent after 30 s; the batch will be replayed")

    def commit(self, batch: Batch) -> None:
        from confluent_kafka import TopicPartition

        if batch.commit:  # the next offset to read, per partition
            offsets = [TopicPartition(self.topic, p, o + 1) for p, o in batch.commit.items()]
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def dead_letter(self, rows: list[dict]) -> None:
        self._produce((DLQ_TOPIC, r["position"], json.dumps(r, default=str)) for r in rows)

    def close(self) -> None:
        self.consumer.close()


class LandingSource:
    """The landing zone's JSONL drops as a stream: the cursor is the set of files fully ingested
    (kept in the warehouse), so a demo needs no broker."""

    def __init__(self, landing: Lake, session: Session):
        self.landing, self.session = landing, session

    def _done(self) -> set[str]:
        ensure_stream_tables(self.session)
        return {r[0] for r in self.session.execute(f"SELECT file FROM {qualified(STREAM_SCHEMA, CURSOR_TABLE)}")}

    def pending(self, done: set[str] | None = None) -> list[str]:
        done = self._done() if done is None else done
        files = []
        root = self.landing.root.rstrip("/")
        for folder, _ in self.landing.list_markers(LANDING_PREFIX):  # complete drops only
            for info in self.landing.fs.get_file_info(pafs.FileSelector(f"{root}/{LANDING_PREFIX}/{folder}")):
                if info.path.endswith(".jsonl"):
                    rel = info.path[len(root) + 1:]
                    if rel not in done:
                        files.append(rel)
        return sorted(files)

    def read(self, max_records: int, max_seconds: float) -> Batch:
        sources, positions, payloads, files = [], [], [], []
        for rel in self.pending():
            with self.landing.fs.open_input_stream(f"{self.landing.root.rstrip('/')}/{rel}") as f:
                lines = f.read().decode("utf-8", errors="replace").splitlines()
            for i, line in enumerate(lines):
                if line.strip():
                    sources.append(rel)
                    positions.append(f"{i:09d}")
                    payloads.append(line)
            files.append(rel)
            if len(payloads) >= max_records:
                break  # whole files only: the cursor is per file
        return Batch(pa.table([sources, positions, payloads], schema=BATCH), files)

    def commit(self, batch: Batch) -> None:
        with self.session.transaction():
            for rel in batch.commit or []:
                self.session.execute(f"INSERT INTO {qualified(STREAM_SCHEMA, CURSOR_TABLE)} VALUES ($1, now())", [rel])

    def lag(self) -> dict[str, dict[str, int]]:
        """Files not yet ingested (the landing zone has no offsets)."""
        done = self._done()
        pending = len(self.pending(done))
        return {"landing": {"committed": len(done), "end": len(done) + pending, "lag": pending}}

    def dead_letter(self, rows: list[dict]) -> None:
        pass  # the DLQ table is the landing zone's only dead-letter sink

    def route(self, rows) -> None:
        pass

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- sink
def ensure_stream_tables(s: Session) -> None:
    s.execute(f"CREATE SCHEMA IF NOT EXISTS {STREAM_SCHEMA}")
    text = "VARCHAR" if s.dialect == "duckdb" else "TEXT"
    s.execute(f"CREATE TABLE IF NOT EXISTS {qualified(STREAM_SCHEMA, DLQ_TABLE)} (source {text}, position {text}, "
              f"payload {text}, error {text}, failed_at TIMESTAMPTZ{key_clause(s.dialect, 'source, position')})")
    s.execute(f"CREATE TABLE IF NOT EXISTS {qualified(STREAM_SCHEMA, CURSOR_TABLE)} (file {text} PRIMARY KEY, "
              "ingested_at TIMESTAMPTZ)")


def ingest_batch(batch: Batch, lake: Lake, session: Session, source, now: dt.datetime | None = None,
                 windows: WindowSettings | None = None, route: bool = False) -> IngestResult:
    """Steps 2-5 of the module docstring for one batch read from `source`; the DLQ rows and the
    event-time windows (`windows.py`) are written in one warehouse transaction."""
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.timezone.utc)
    out = IngestResult(read=batch.table.num_rows)
    if not batch.table.num_rows:
        return out
    with scratch_duckdb() as con:
        con.register("batch", batch.table)
        for stmt in sql.statements("stream_events"):
            con.execute(stmt, {"processed_at": now} if "$processed_at" in stmt else None).fetchall()
        con.unregister("batch")
        out.events = con.execute("SELECT count(*) FROM stream_good").fetchall()[0][0]
        hours = [r[0] for r in con.execute("SELECT DISTINCT hour FROM stream_good ORDER BY 1").fetchall()]
        bad = con.sql("SELECT source, position, payload, error, $now AS failed_at FROM stream_parsed "
                          "WHERE error IS NOT NULL ORDER BY source, position", params={"now": now}).to_arrow_table()
        valid = con.execute("SELECT count(*) FROM stream_parsed WHERE error IS NULL").fetchall()[0][0]
        out.duplicates = valid - out.events
        good = con.sql(f"SELECT {', '.join(INPUT_COLUMNS)} FROM stream_good").to_arrow_table()
        routed = con.execute("SELECT event_type, event_id, CAST(to_json(g) AS VARCHAR) FROM "
                             f"(SELECT {', '.join(EVENT_COLUMNS)} FROM stream_good) g").fetchall() if route else []
        if hours:
            existing = [h for h in hours if lake.has_file(f"{'/'.join(EVENTS_KEY)}/hour={h}/{PART_FILE}")]
            if existing:
                lake.handle(EVENTS_KEY, existing, "hour").register(con, "lake_existing")
                merged = ("SELECT * FROM (SELECT * FROM lake_existing UNION ALL BY NAME SELECT * FROM stream_good) "
                          "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY processed_at, source, position) = 1")
            else:
                merged = "SELECT * FROM stream_good"
            lake.write(EVENTS_KEY, DuckDBQuery(con, f"SELECT * FROM ({merged}) ORDER BY hour, event_time, event_id"),
                       partitions=hours, column="hour")
            out.partitions = hours
    crash_point("after_lake_write")
    out.dlq = bad.num_rows
    out.dlq_by_error = dict(Counter(bad.column("error").to_pylist()))
    with session.transaction():
        ensure_stream_tables(session)
        if bad.num_rows:
            session.stage_arrow("__dlq", bad)
            session.execute(f"DELETE FROM {qualified(STREAM_SCHEMA, DLQ_TABLE)} WHERE (source, position) IN "
                            "(SELECT source, position FROM __dlq)")
            session.execute(f"INSERT INTO {qualified(STREAM_SCHEMA, DLQ_TABLE)} SELECT source, position, payload, error, "
                            "failed_at FROM __dlq")
            session.execute("DROP TABLE __dlq")
        applied = apply_windows(session, good, windows or WindowSettings(), now, batch.partitions)
        crash_point("before_warehouse_commit")
    crash_point("after_warehouse_commit")
    out.accepted, out.late, out.watermark = applied.accepted, applied.late, applied.watermark
    source.dead_letter([{"source": r["source"], "position": r["position"], "original_event": r["payload"],
                         "error": r["error"], "timestamp": now.isoformat()} for r in bad.to_pylist()])
    if routed:
        source.route(routed)
    crash_point("before_commit")
    source.commit(batch)
    crash_point("after_commit")
    out.seconds = time.perf_counter() - started
    return out


def ingest(source, lake: Lake, session: Session, max_records: int, max_seconds: float, batch_records: int,
           windows: WindowSettings | None = None, route: bool = False, log=None) -> IngestResult:
    """Micro-batches from `source` until it is caught up or the record/time budget is spent."""
    total = IngestResult()
    started = time.perf_counter()
    deadline = time.monotonic() + max_seconds
    while total.read < max_records and (left := deadline - time.monotonic()) > 0:
        batch = source.read(min(batch_records, max_records - total.read), min(left, 5.0))
        if not batch.table.num_rows:
            break
        r = ingest_batch(batch, lake, session, source, windows=windows, route=route)
        total.add(r)
        if log:
            log(f"micro-batch {total.batches}: {r.read:,} read, {r.events:,} to the lake, {r.dlq:,} to the DLQ, "
                f"{r.accepted:,} into windows, {r.late:,} late, {r.seconds:.2f}s")
    total.seconds = time.perf_counter() - started  # reads included
    return total
