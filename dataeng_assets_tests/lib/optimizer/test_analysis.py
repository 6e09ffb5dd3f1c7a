"""Every optimizer rule on synthetic histories: fires when it should, silent when it should not."""

import pytest

from dataeng_assets.lib.optimizer.analysis import (
    analyze,
    critical_path,
    fit_exponent,
    rule_batch_partitions,
    rule_full_scans,
    rule_lake_files,
    rule_memory,
    rule_partition_too_large,
    rule_regression,
    rule_retries,
    rule_scaling,
    rule_serial_independent,
    rule_slowest_steps,
    simulate_parallel,
    summary,
)
from dataeng_assets.lib.optimizer.collect import RunRecord, StepRecord
from dataeng_assets.lib.optimizer.report import compare, render

MACHINE = {"cores": 2, "memory_mib": 24_000}


def step(key, start, dur, up=(), run="r1", cpu=None, rows=None, attempts=1, failed=0.0, partitions=1, **metrics):
    m = dict(metrics)
    if cpu is not None:
        m["cpu_s"] = cpu
    return StepRecord(run_id=run, job="job", step_key=key, status="SUCCESS", start=start, end=start + dur,
                      duration_s=dur, attempts=attempts, failed_attempts_s=failed, upstream_steps=list(up),
                      rows=rows, partitions=partitions, metrics=m)


def run(steps, run_id="r1", wall=None, partition="2024-01-01", partitions=1, start=0.0, job="job"):
    for s in steps:
        s.run_id = run_id
        s.job = job
    end = max((s.end for s in steps), default=start)
    return RunRecord(run_id=run_id, job=job, status="SUCCESS", start=start, end=end,
                     wall_s=wall if wall is not None else end - start, partition_range=partition,
                     partitions=partitions, steps=steps)


# ---- critical path and parallel simulation
def test_critical_path_follows_dependencies():
    steps = [step("a", 0, 1), step("b", 1, 5, ["a"]), step("c", 6, 1, ["a"]), step("d", 7, 1, ["b", "c"])]
    total, path = critical_path(steps)
    assert path == ["a", "b", "d"] and total == 7


def test_parallel_simulation_respects_cpu_demand():
    io_bound = [step("a", 0, 2, cpu=0.1), step("b", 2, 2, cpu=0.1)]
    assert simulate_parallel(io_bound, 2) == pytest.approx(2)
    cpu_bound = [step("a", 0, 2, cpu=4.0), step("b", 2, 2, cpu=4.0)]  # each used both cores
    assert simulate_parallel(cpu_bound, 2) == pytest.approx(4)


# ---- serial independent steps
def test_serial_independent_fires_for_idle_cores():
    r = run([step("a", 0, 2, cpu=0.2), step("b", 2, 2, cpu=0.2), step("c", 4, 1, ["a", "b"], cpu=0.1)])
    [rec] = rule_serial_independent([r], MACHINE)
    assert rec.evidence["pairs"] == [("a", "b")]
    assert rec.estimated_gain_s == pytest.approx(2.0, abs=0.01)


def test_steps_of_one_pool_are_serial_on_purpose():
    a, b = step("extract_a", 0, 2, cpu=0.2), step("extract_b", 2, 2, cpu=0.2)
    a.pool = b.pool = "warehouse"  # one DuckDB writer at a time
    assert rule_serial_independent([run([a, b])], MACHINE) == []
    assert simulate_parallel([a, b], 2) == pytest.approx(4)
    c = step("lake_step", 4, 2, cpu=0.2)  # outside the pool: may overlap the pool's steps
    recs = rule_serial_independent([run([a, b, c])], MACHINE)
    assert recs and ("extract_a", "extract_b") not in recs[0].evidence["pairs"]


def test_serial_independent_silent_for_a_chain_or_busy_cores():
    chain = run([step("a", 0, 2, cpu=0.2), step("b", 2, 2, ["a"], cpu=0.2)])
    assert rule_serial_independent([chain], MACHINE) == []
    busy = run([step("a", 0, 2, cpu=4.0), step("b", 2, 2, cpu=4.0)])  # DuckDB on both cores already
    assert rule_serial_independent([busy], MACHINE) == []
    parallel = run([step("a", 0, 2, cpu=0.2), step("b", 0, 2, cpu=0.2)])
    assert rule_serial_independent([parallel], MACHINE) == []


# ---- batching partitions
def overhead_runs(n, wall=10.0, work=1.0):
    return [run([step("x", i * 20, wall - 1, warehouse_s=work)], run_id=f"r{i}", wall=wall,
                partition=f"2024-01-{i + 1:02d}", start=i * 20) for i in range(n)]


def test_batch_partitions_fires_when_fixed_cost_dominates():
    [rec] = rule_batch_partitions(overhead_runs(5), MACHINE)
    assert rec.rule == "batch_partitions" and rec.evidence["runs"] == 5
    assert rec.evidence["fixed_share"] == pytest.approx(0.9)
    assert rec.estimated_gain_s == pytest.approx(4 * 9.0)
    assert "2024-01-01..2024-01-05" in rec.action


def test_batch_partitions_silent_when_work_dominates_or_few_runs():
    assert rule_batch_partitions(overhead_runs(5, wall=10.0, work=9.0), MACHINE) == []
    assert rule_batch_partitions(overhead_runs(2), MACHINE) == []


# ---- scaling and regression
def test_superlinear_scaling_is_detected():
    runs = [run([step("join", 0, 0.1 * (n / 1000) ** 2, rows=n)], run_id=f"r{n}") for n in (1000, 2000, 4000, 8000, 16000)]
    [rec] = rule_scaling(runs, MACHINE)
    assert rec.evidence["exponent"] == pytest.approx(2.0, abs=0.01)


def test_linear_scaling_is_fine():
    runs = [run([step("scan", 0, 0.5 * n / 1000, rows=n)], run_id=f"r{n}") for n in (1000, 2000, 4000, 8000)]
    assert rule_scaling(runs, MACHINE) == []
    assert fit_exponent([(1, 1), (10, 10)]) == pytest.approx(1.0)


def test_regression_against_own_history():
    history = [run([step("s", 0, 4.0 + i * 0.1)], run_id=f"r{i}") for i in range(5)]
    [rec] = rule_regression(history + [run([step("s", 0, 9.0)], run_id="new")], MACHINE)
    assert rec.step == "s" and rec.estimated_gain_s == pytest.approx(9.0 - 4.2)
    assert rule_regression(history + [run([step("s", 0, 4.5)], run_id="new")], MACHINE) == []
    assert rule_regression(history[:2] + [run([step("s", 0, 9.0)], run_id="new")], MACHINE) == []  # too little history


# ---- retries, memory, partitions, scans, files
def test_retries_cost_is_counted():
    runs = [run([step("flaky", 0, 3, attempts=3, failed=4.0)], run_id="a"), run([step("flaky", 0, 3, attempts=2, failed=1.5)], run_id="b")]
    [rec] = rule_retries(runs, MACHINE)
    assert rec.severity == "warning" and rec.estimated_gain_s == 5.5
    assert rule_retries([run([step("ok", 0, 3)])], MACHINE) == []


def test_memory_near_the_machine_and_far_above_the_data():
    near = run([step("big", 0, 5, peak_rss_mib=21_000.0, rss_start_mib=200.0)])
    assert rule_memory([near], MACHINE)[0].severity == "critical"
    pandas_like = run([step("p", 0, 5, peak_rss_mib=2_500.0, rss_start_mib=250.0, bytes_in=100 * 2**20)])
    [rec] = rule_memory([pandas_like], MACHINE)
    assert rec.severity == "warning" and "Arrow" in rec.action
    lean = run([step("l", 0, 5, peak_rss_mib=700.0, rss_start_mib=250.0, bytes_in=2 * 2**30)])
    assert rule_memory([lean], MACHINE) == []


def test_partition_too_large():
    assert rule_partition_too_large([run([step("s", 0, 4000)])], MACHINE)[0].rule == "partition_too_large"
    assert rule_partition_too_large([run([step("s", 0, 4000, partitions=7)])], MACHINE) == []


def test_full_scan_that_did_not_prune():
    scan = {"table": "analytics.big", "rows_scanned": 5_000_000, "rows_out": 1_000, "filtered": True, "seconds": 2.0}
    [rec] = rule_full_scans([run([step("q", 0, 3, plan=[{"label": "q", "scans": [scan]}])])], MACHINE)
    assert rec.rule == "full_scan" and rec.evidence["rows_scanned"] == 5_000_000
    whole = {**scan, "rows_out": 5_000_000, "filtered": False}  # reading a whole partition is the job
    assert rule_full_scans([run([step("q", 0, 3, plan=[{"label": "q", "scans": [whole]}])])], MACHINE) == []


def test_small_files_and_compression():
    runs = []
    for i in range(25):
        s = step("w", 0, 1, rows=1000, bytes_in=1_000_000, rows_in=1000)
        s.files_written, s.bytes_written = 1, 500_000  # 50% smaller: misses the 70% target
        runs.append(run([s], run_id=f"r{i}"))
    recs = {r.rule: r for r in rule_lake_files(runs, MACHINE)}
    assert recs["small_files"].evidence["files"] == 25
    assert recs["compression"].severity == "warning" and recs["compression"].evidence["reduction"] == 0.5


# ---- the whole analysis and the report
def test_analyze_orders_by_severity_then_gain_and_renders():
    runs = overhead_runs(5) + [run([step("a", 0, 2, cpu=0.2), step("b", 2, 2, cpu=0.2)], run_id="last", partition=None)]
    recs = analyze(runs, MACHINE)
    assert [r.rule for r in recs][:2] == ["batch_partitions", "serial_independent_steps"]
    assert recs[-1].severity == "info"
    assert rule_slowest_steps(runs, MACHINE)[0].evidence["critical_path"]
    from dataeng_assets.lib.optimizer.report import build

    report = build(runs, MACHINE)
    assert "batch_partitions" not in render(report, "markdown") and "single-partition runs" in render(report, "markdown")
    html = render(report, "html")
    assert html.count("<svg") == 2 and "<polyline" in html and "<rect" in html


def test_compare_prints_deltas():
    before = {"summary": summary(overhead_runs(5))}
    after = {"summary": summary(overhead_runs(1))}
    text = compare(before, after)
    assert "Total runtime: 50.0s → 10.0s (-80%)" in text
    assert "x" in text.splitlines()[-1]
