"""End to end through the real webserver and daemon: a partitioned run launched over GraphQL,
queued, launched by the daemon, executed by the multiprocess executor, and its rows read back."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from dataeng_assets.lib import env
from dataeng_assets.lib.warehouse import Warehouse
from dataeng_assets_tests.conftest import event, free_port, write_drop

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCATION = "dataeng_assets.definitions"

pytestmark = pytest.mark.e2e


def graphql(port: int, query: str) -> dict:
    r = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]


def wait_loaded(port: int, proc: subprocess.Popen, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {proc.returncode}")
        try:
            data = graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                                 "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
            entries = data["workspaceOrError"]["locationEntries"]
            last = entries
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                assert not errors, errors
                return entries[0]["name"]
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"code location not loaded in {timeout}s: {last}")


@pytest.fixture
def dagster_dev(data_home, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    environ = {**os.environ, "DAGSTER_HOME": str(home), "DATAENG_HOME": str(data_home)}
    log = open(tmp_path / "dagster_dev.log", "wb")
    dagster = str(Path(sys.executable).with_name("dagster"))
    # `dagster dev` in the background ignores SIGTERM/SIGINT: it gets its own process group,
    # and the whole group is killed afterwards.
    proc = subprocess.Popen(
        [dagster, "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
        env=environ, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield port, proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def test_partitioned_run_through_webserver_and_daemon(data_home, dagster_dev):
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    port, proc = dagster_dev
    write_drop(data_home / "landing", "2024-01-14", [
        event("e1", 1, "2024-01-14T08:00:00Z"),
        event("e2", 1, "2024-01-14T08:01:00Z", "add_to_cart", items=[1, 2]),
        event("e3", 2, "2024-01-14T09:00:00Z"),
    ])
    location = wait_loaded(port, proc)
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        "user_analytics_job", repository_location_name=location, tags={"dagster/partition": "2024-01-14"}
    )
    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline:
        try:
            status = client.get_run_status(run_id).value
        except DagsterGraphQLClientError:
            status = None
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS", f"run {run_id} ended {status}"
    with Warehouse(env.warehouse_database()).session() as s:
        rows = s.execute("SELECT user_id, event_count, total_items FROM analytics.user_daily_metrics ORDER BY user_id")
    assert rows == [(1, 2, 2), (2, 1, 0)]

    # the declarative pipeline is served with its schedule
    selector = f'{{repositoryLocationName: "{location}", repositoryName: "__repository__"}}'
    q = f"{{ schedulesOrError(repositorySelector: {selector}) {{ ... on Schedules {{ results {{ name cronSchedule }} }} }} }}"
    schedules = {s["name"]: s["cronSchedule"] for s in graphql(port, q)["schedulesOrError"]["results"]}
    assert schedules["customer_analytics_schedule"] == "0 2 * * *"

    # the daemon's quality_alerts sensor turns the run's failed WARN checks into alerts, once each
    log = data_home / "alerts" / "alerts.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not log.exists():
        time.sleep(2)
    time.sleep(35)  # one more sensor interval: nothing may be sent twice
    alerts = [json.loads(line) for line in log.read_text().splitlines()]
    failed = {(a["asset"], a["check"]) for a in alerts}
    assert ("lake/events/raw_events", "freshness_event_timestamp") in failed  # last event 09:00, day ends 24:00
    assert len(alerts) == len({a["id"] for a in alerts}) and all(a["run_id"] == run_id for a in alerts)


def test_the_daemon_keeps_the_stream_current_from_kafka(data_home, kafka_env, dagster_dev, tmp_path):
    """No run is launched by hand: the stream sensor (on by default with Kafka) sees the backlog,
    the checks are recorded on the instance, and the DLQ-rate failure is alerted. (kafka_env is
    requested before dagster_dev, so `dagster dev` inherits the Kafka settings.)"""
    import dagster as dg
    from confluent_kafka import Producer

    from dataeng_assets_tests.defs.test_streaming import seal
    from dataeng_assets_tests.lib.streaming.test_ingest import lake_ids, produce

    bootstrap, topic = kafka_env
    port, proc = dagster_dev
    wait_loaded(port, proc)
    good, bad = produce(bootstrap, topic, n=3_000, bad_every=20)  # 5 % malformed: dlq_rate fails
    seal(bootstrap, topic)
    good += 3

    def wait_for(predicate, what: str, timeout: float = 240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception:  # noqa: BLE001 - the lake or the DuckDB file is mid-write: look again
                pass
            time.sleep(3)
        raise TimeoutError(f"{what} within {timeout}s; dagster dev log:\n"
                           + (tmp_path / "dagster_dev.log").read_text(errors="replace")[-3000:])

    def warehouse_count(sql: str) -> int:
        with Warehouse(env.warehouse_database()).session() as s:
            return s.fetchone(sql)[0]

    wait_for(lambda: len(lake_ids()) == good and warehouse_count("SELECT count(*) FROM stream.events_dlq") == bad,
             "the first micro-batch")
    # more events, an hour later: the next micro-batch adds them and their windows
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(300):
        p.produce(topic, json.dumps(event(f"new-{i}", i % 7, f"2024-01-15T01:{i % 60:02d}:00Z")).encode())
    p.flush(10)
    seal(bootstrap, topic)  # the seal events are duplicates: nothing new in the lake
    wait_for(lambda: len(lake_ids()) == good + 300 and warehouse_count(
        "SELECT sum(page_views) FROM stream.pageviews_5m WHERE window_start >= TIMESTAMPTZ '2024-01-15 01:00:00+00'") == 300,
        "the second micro-batch")
    ids = lake_ids()
    assert len(ids) == len(set(ids))

    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        runs = instance.get_run_records(dg.RunsFilter(job_name="stream_job"))
        assert len(runs) >= 2 and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs
                                      if r.dagster_run.is_finished)
        for asset, check in ((["lake", "stream", "user_events"], "consumer_lag"), (["stream", "events_dlq"], "dlq_rate")):
            history = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(dg.AssetKey(asset), check), limit=10)
            assert len(history) >= 2, check
    log = data_home / "alerts" / "alerts.jsonl"
    wait_for(lambda: any(json.loads(line)["check"] == "dlq_rate" for line in log.read_text().splitlines()),
             "the dlq_rate alert", timeout=120)
