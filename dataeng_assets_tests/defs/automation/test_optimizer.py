"""The optimizer end to end: a deliberately badly configured pipeline is materialized, the sensor
records the run, and the expected recommendations appear with their evidence."""

import json
import time

import dagster as dg

from dataeng_assets.defs.automation.optimizer import optimizer_on_failure, optimizer_on_success
from dataeng_assets.defs.platform.assets import OPTIMIZER_REPORT
from dataeng_assets.lib.optimizer.collect import History
from dataeng_assets.lib.optimizer.publish import report_dir
from dataeng_assets.lib.stepstats import step_metrics

daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")


def waiting_asset(name, deps=(), seconds=0.6):
    @dg.asset(name=name, deps=list(deps), partitions_def=daily)
    def _asset(context: dg.AssetExecutionContext) -> None:
        with step_metrics(context) as m, m.sql("wait"):
            time.sleep(seconds)  # waiting on IO: one core would do for both branches

    return _asset


BRANCH_A = waiting_asset("branch_a")
BRANCH_B = waiting_asset("branch_b")
JOIN = waiting_asset("join", deps=["branch_a", "branch_b"], seconds=0.1)
DEFS = dg.Definitions(assets=[BRANCH_A, BRANCH_B, JOIN])

attempts = {"n": 0}


@dg.asset(partitions_def=daily, retry_policy=dg.RetryPolicy(max_retries=2))
def flaky(context: dg.AssetExecutionContext) -> None:
    attempts["n"] += 1
    time.sleep(0.2)
    if attempts["n"] < 3:
        raise ConnectionError("transient blip")


def tick(sensor, instance, result, defs):
    run = instance.get_run_by_id(result.run_id)
    event = next(
        entry.dagster_event
        for entry in instance.all_logs(result.run_id, of_type={dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE})
    )
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=event, dagster_instance=instance, dagster_run=run,
        repository_def=defs.get_repository_def(),
    )
    sensor(context)


def test_serial_independent_branches_are_reported(data_home):
    with dg.DagsterInstance.ephemeral() as instance:
        # The bad configuration: the in-process executor runs independent branches one by one.
        result = dg.materialize([BRANCH_A, BRANCH_B, JOIN], partition_key="2024-01-05", instance=instance)
        assert result.success
        tick(optimizer_on_success, instance, result, DEFS)
        [run] = History().runs()
        assert run.run_id == result.run_id and {s.step_key for s in run.steps} == {"branch_a", "branch_b", "join"}
        join = next(s for s in run.steps if s.step_key == "join")
        assert join.upstream_steps == ["branch_a", "branch_b"]
        report = json.loads((report_dir() / "report.json").read_text())
        top = report["recommendations"][0]
        assert top["rule"] == "serial_independent_steps"
        assert top["evidence"]["pairs"] == [["branch_a", "branch_b"]]
        assert 0.4 < top["estimated_gain_s"] < 0.8  # one branch's 0.6 s
        mat = instance.get_latest_materialization_event(OPTIMIZER_REPORT)
        assert mat is not None
        assert "independent steps ran one after another" in mat.asset_materialization.metadata["report"].value
        assert (report_dir() / "report.html").read_text().count("<svg") == 2


def test_retried_step_is_reported_with_its_cost(data_home):
    attempts["n"] = 0
    defs = dg.Definitions(assets=[flaky])
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([flaky], partition_key="2024-01-05", instance=instance)
        assert result.success and attempts["n"] == 3
        tick(optimizer_on_success, instance, result, defs)
        [run] = History().runs()
        [s] = run.steps
        assert s.attempts == 3 and s.failed_attempts_s >= 0.4
        report = json.loads((report_dir() / "report.json").read_text())
        retry = next(r for r in report["recommendations"] if r["rule"] == "retries")
        assert retry["step"] == "flaky" and retry["evidence"]["attempts"] == [3]


def test_failed_runs_are_recorded_too(data_home):
    @dg.asset(partitions_def=daily)
    def broken() -> None:
        raise ValueError("bad data")

    defs = dg.Definitions(assets=[broken])
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([broken], partition_key="2024-01-05", instance=instance, raise_on_error=False)
        assert not result.success
        tick(optimizer_on_failure, instance, result, defs)
        [run] = History().runs()
        assert run.status == "FAILURE" and run.steps[0].status == "FAILURE"


def test_history_is_idempotent_per_run(data_home):
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([BRANCH_A], partition_key="2024-01-05", instance=instance)
        tick(optimizer_on_success, instance, result, DEFS)
        tick(optimizer_on_success, instance, result, DEFS)
        assert len(History().runs()) == 1
