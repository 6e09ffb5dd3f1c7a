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
