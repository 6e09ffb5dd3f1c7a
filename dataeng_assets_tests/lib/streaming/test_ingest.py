"""Kafka micro-batches into the lake against the real (Tansu) broker: exact counts with a DLQ,
and crash injection between the lake write and the offset commit."""

import json
import subprocess
import sys

import pyarrow.dataset as pads
import pytest

from dataeng_assets.lib import env
from dataeng_assets.lib.lake import Lake
from dataeng_assets.lib.streaming.ingest import (
    DLQ_TABLE,
    EVENTS_KEY,
    STREAM_SCHEMA,
    KafkaSource,
    ingest_batch,
)
from dataeng_assets.lib.warehouse import Warehouse

N = 100_000
BAD = ["not json", '{"event_id": "x", "user_id": 1, "event_type": "click"', '["array"]',
       '{"event_id": "", "user_id": 1, "event_type": "click", "event_timestamp": "2024-01-14T10:00:00Z"}',
       '{"event_id": "b", "user_id": "abc", "event_type": "click", "event_timestamp": "2024-01-14T10:00:00Z"}',
       '{"event_id": "c", "user_id": 1, "event_type": "purchase", "event_timestamp": "2024-01-14T10:00:00Z", "amount": -5}']


def produce(bootstrap: str, topic: str, n: int = N, bad_every: int = 97) -> tuple[int, int]:
    """n messages; every `bad_every`-th is malformed. Returns (good, bad)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    good = bad = 0
    for i in range(n):
        if i % bad_every == 0:
            value = BAD[i % len(BAD)]
            bad += 1
        else:
            minute = i % (24 * 60)
            value = json.dumps({"event_id": f"evt-{i}", "user_id": i % 500, "session_id": f"s{i % 900}",
                                "event_type": ["page_view", "click", "purchase"][i % 3],
                                "event_timestamp": f"2024-01-14T{minute // 60:02d}:{minute % 60:02d}:00Z",
                                "amount": (i % 300) + 0.5 if i % 3 == 2 else None})
            good += 1
        p.produce(topic, key=str(i % 50), value=value.encode())
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(30)
    return good, bad


def drain(bootstrap: str, topic: str, max_records: int = 30_000) -> list:
    results = []
    source = KafkaSource(bootstrap, topic, f"{topic}-group")
    try:
        with Warehouse(env.warehouse_database()).session() as s:
            while True:
                batch = source.read(max_records, 3.0)
                if batch.table.num_rows == 0:
                    break
                results.append(ingest_batch(batch, Lake(env.lake_location()), s, source))
    finally:
        source.close()
    return results


def lake_ids() -> list[str]:
    root = env.lake_location().path + "/" + "/".join(EVENTS_KEY)
    return pads.dataset(root, format="parquet", partitioning="hive").to_table(columns=["event_id"]).column(0).to_pylist()


def dlq_count() -> int:
    with Warehouse(env.warehouse_database()).session() as s:
        return s.fetchone(f"SELECT count(*) FROM {STREAM_SCHEMA}.{DLQ_TABLE}")[0]


def warehouse_ids() -> list[str]:
    """Event ids in the warehouse: accepted into the windows, or late (each in exactly one)."""
    with Warehouse(env.warehouse_database()).session() as s:
        return [r[0] for r in s.execute("SELECT event_id FROM stream.user_events UNION ALL "
                                        "SELECT event_id FROM stream.late_events")]


def test_every_message_lands_in_the_lake_or_the_dlq_exactly_once(data_home, kafka_broker, kafka_topic):
    good, bad = produce(kafka_broker, kafka_topic)
    results = drain(kafka_broker, kafka_topic)
    ids = lake_ids()
    assert len(ids) == len(set(ids)) == good
    assert sorted(warehouse_ids()) == sorted(ids)
    assert dlq_count() == bad and sum(r.dlq for r in results) == bad
    assert sum(r.read for r in results) == N
    # a second drain finds nothing new: offsets were committed
    assert drain(kafka_broker, kafka_topic) == []


@pytest.mark.parametrize("point", ["after_lake_write", "before_warehouse_commit", "after_warehouse_commit",
                                   "before_commit", "after_commit"])
def test_a_crash_at_any_point_loses_and_duplicates_nothing(data_home, kafka_broker, kafka_topic, point):
    good, bad = produce(kafka_broker, kafka_topic, n=20_000)
    code = ("from dataeng_assets_tests.lib.streaming.test_ingest import drain; "
            f"drain({kafka_broker!r}, {kafka_topic!r}, max_records=4_000)")
    for _ in range(3):  # killed three times there (the same batch replayed, or the next one after a commit)
        proc = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ,
                              "DATAENG_STREAM_CRASH_AT": point}, capture_output=True, timeout=120)
        assert proc.returncode == 17, proc.stderr.decode()[-2000:]
    drain(kafka_broker, kafka_topic, max_records=4_000)
    ids = lake_ids()
    assert len(ids) == len(set(ids)) == good
    assert sorted(warehouse_ids()) == sorted(ids)
    assert dlq_count() == bad
