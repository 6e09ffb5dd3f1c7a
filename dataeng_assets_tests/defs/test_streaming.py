"""The stream as assets against the real (Tansu) broker: lag and DLQ-rate checks, routing, the
micro-batch sensor; and the landing-zone fallback without a broker."""

import json

import dagster as dg

from dataeng_assets.cli import run_job
from dataeng_assets.definitions import defs
from dataeng_assets.lib import env
from dataeng_assets.lib.streaming.ingest import DLQ_TOPIC
from dataeng_assets.lib.warehouse import Warehouse
from dataeng_assets_tests.conftest import event, write_drop
from dataeng_assets_tests.lib.streaming.test_ingest import lake_ids, produce

LAKE_EVENTS = dg.AssetKey(["lake", "stream", "user_events"])
DLQ = dg.AssetKey(["stream", "events_dlq"])


def topic_messages(bootstrap: str, topic: str) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            return []
        c.assign([TopicPartition(topic, p, -2) for p in meta.partitions])
        out, idle = [], 0
        while idle < 2:
            msgs = c.consume(10_000, timeout=1.0)
            idle = 0 if msgs else idle + 1
            out += [m.value() for m in msgs if m.error() is None]
        return out
    finally:
        c.close()


def seal(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """One last single-record batch per partition: Tansu reports a partition's end offset as its
    last record batch's base offset + 1, so this makes the reported end exact."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for n in range(partitions):
        p.produce(topic, partition=n, value=json.dumps(event(f"seal-{n}", 1, "2024-01-14T23:59:00Z")).encode())
        p.flush(10)


def stream_run(instance, **config):
    job = defs().resolve_job_def("stream_job")
    return job.execute_in_process(instance=instance, raise_on_error=False,
                                  run_config={"resources": {"stream": {"config": config}}})


def checks(result) -> dict:
    return {ev.check_name: ev for ev in result.get_asset_check_evaluations()}


def test_lag_and_dlq_checks_and_routing_through_the_asset(kafka_env, tmp_path):
    bootstrap, topic = kafka_env
    good, bad = produce(bootstrap, topic, n=6_000)
    seal(bootstrap, topic)
    good += 3
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        behind = stream_run(instance, max_records=2_000, batch_records=1_000, lag_warn_records=1_000,
                            dlq_rate_max=0.005)
        assert behind.success
        lag = checks(behind)["consumer_lag"]
        assert not lag.passed and lag.severity == dg.AssetCheckSeverity.WARN
        assert lag.metadata["observed"].value == good + bad - 2_000  # exact: every message is counted
        by_partition = lag.metadata["lag_by_partition"].value
        assert sorted(by_partition) == ["0", "1", "2"] and sum(p["lag"] for p in by_partition.values()) == good + bad - 2_000
        rate = checks(behind)["dlq_rate"]  # about 1 in 97 malformed > 0.5 %
        assert not rate.passed and rate.severity == dg.AssetCheckSeverity.ERROR
        assert 0.005 < rate.metadata["observed"].value == rate.metadata["dlq_rows"].value / 2_000

        caught_up = stream_run(instance, route_processed=True, dlq_rate_max=0.05)
        assert caught_up.success
        assert checks(caught_up)["consumer_lag"].passed and checks(caught_up)["consumer_lag"].metadata["observed"].value == 0
        assert checks(caught_up)["dlq_rate"].passed
        md = caught_up.asset_materializations_for_node("stream_ingest")
        lake_md = next(m for m in md if m.asset_key == LAKE_EVENTS).metadata
        assert lake_md["consumer_lag"].value == 0 and lake_md["messages_read"].value == good + bad - 2_000
    ids = lake_ids()
    assert len(ids) == len(set(ids)) == good
    with Warehouse(env.warehouse_database()).session() as s:
        assert s.fetchone("SELECT count(*) FROM stream.events_dlq")[0] == bad
        assert s.fetchone("SELECT count(*) FROM stream.user_events")[0] + \
            s.fetchone("SELECT count(*) FROM stream.late_events")[0] == good
    dlq = [json.loads(m) for m in topic_messages(bootstrap, DLQ_TOPIC)]
    assert len([d for d in dlq if d["source"] == topic]) == bad
    assert {"original_event", "error", "timestamp"} <= set(dlq[0])
    routed = sum(len(topic_messages(bootstrap, f"processed-{t}")) for t in ("page_view", "click", "purchase"))
    assert routed == lake_md["row_count"].value  # the second run's events, routed by type


def test_the_sensor_requests_a_micro_batch_only_with_a_backlog_and_no_run_in_flight(kafka_env, tmp_path):
    bootstrap, topic = kafka_env
    d = defs()
    sensor = d.resolve_sensor_def("stream_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING  # Kafka is configured
    resources = {k: d.resources[k] for k in ("stream", "landing", "warehouse")}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        def tick():
            return sensor(dg.build_sensor_context(instance=instance, resources=resources))

        assert isinstance(tick(), dg.SkipReason)  # empty topic: caught up
        produce(bootstrap, topic, n=500)
        seal(bootstrap, topic)
        request = tick()
        assert isinstance(request, dg.RunRequest) and int(request.tags["dataeng/backlog"]) == 503
        in_flight = instance.create_run_for_job(d.resolve_job_def("stream_job"), status=dg.DagsterRunStatus.STARTED)
        assert "still in flight" in tick().skip_message
        instance.report_run_canceled(in_flight)
        assert stream_run(instance).success
        assert tick().skip_message == "caught up"


def test_without_a_broker_the_same_assets_read_the_landing_zone(data_home, monkeypatch):
    monkeypatch.delenv("DATAENG_KAFKA_BOOTSTRAP", raising=False)
    landing = env.data_home() / "landing"
    write_drop(landing, "2024-01-14", [event("e1", 1, "2024-01-14T08:00:00Z"),
                                       event("e2", 1, "2024-01-14T08:03:00Z", "purchase", amount=120.0),
                                       '{"broken": ', event("e1", 1, "2024-01-14T08:00:00Z")])
    write_drop(landing, "2024-01-15", [event("f1", 2, "2024-01-15T09:00:00Z")], marker=False)  # incomplete drop
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job("stream_job", None, None, instance)
        again = run_job("stream_job", None, None, instance)  # nothing new: the cursor holds
    assert result.success
    assert sorted(lake_ids()) == ["e1", "e2"]
    with Warehouse(env.warehouse_database()).session() as s:
        assert s.execute("SELECT error FROM stream.events_dlq") == [("malformed_json",)]
        assert s.execute("SELECT user_id, page_views FROM stream.pageviews_5m") == [(1, 1)]
        assert s.execute("SELECT purchases, revenue FROM stream.purchases_15m") == [(1, 120.0)] * 3
        assert s.execute("SELECT events, duration_seconds FROM stream.sessions") == [(2, 180.0)]
    evaluations = result.get_asset_check_evaluations()  # lag, DLQ rate and rules/stream.yaml
    assert len(evaluations) >= 20
    assert [ev.check_name for ev in evaluations if not ev.passed] == ["dlq_rate"]  # 1 of 4 lines
    assert checks(result)["dlq_rate"].metadata["observed"].value == 0.25
    lag = checks(result)["consumer_lag"]
    assert lag.passed and lag.metadata["lag_by_partition"].value == {"landing": {"committed": 1, "end": 1, "lag": 0}}
    assert next(m for m in again.asset_materializations_for_node("stream_ingest")
                if m.asset_key == LAKE_EVENTS).metadata["messages_read"].value == 0
    assert sorted(lake_ids()) == ["e1", "e2"]
