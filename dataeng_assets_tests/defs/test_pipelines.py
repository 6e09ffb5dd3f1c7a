"""Declarative pipelines materialized in process: the shipped example on DuckDB and PostgreSQL,
watermarks, idempotent upserts, retries with backoff, timeouts, and a broken file."""

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from dataeng_assets.defs.pipelines import load_pipelines, pipeline_definitions
from dataeng_assets.lib import env
from dataeng_assets.lib.generate import WorldSpec, generate
from dataeng_assets.lib.pipelines import runner
from dataeng_assets.lib.pipelines.spec import load_file
from dataeng_assets.lib.warehouse import Warehouse

EXAMPLE = Path(__file__).resolve().parents[2] / "pipelines" / "customer_analytics.yaml"


def run(path, **kw):
    with dg.DagsterInstance.ephemeral() as instance:
        result, built = runner.run(load_file(path), instance, **kw)
        rows = {r["task"]: r for r in runner.summary(result, built, instance)}
    md = {e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
          for e in result.get_asset_materialization_events()}
    return result, rows, md


def ltv() -> list[tuple]:
    with Warehouse(env.warehouse_database()).session() as s:
        return sorted(s.execute("SELECT customer_id, number_of_orders, lifetime_value, value_segment "
                                "FROM analytics.customer_ltv"))


@pytest.fixture
def world(warehouse_url):
    generate(WorldSpec(days=2, users=200, events_per_day=2_000), env.landing_location(), env.source_database(),
             progress=False)
    return warehouse_url


def test_example_pipeline_end_to_end(world):
    result, rows, md = run(EXAMPLE)
    assert result.success
    assert all(r["status"] in ("success", "passed") for r in rows.values()), rows
    src = sqlite3.connect(env.source_database().path)
    customers, orders = (src.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("customers", "orders"))
    assert md["customer_analytics/extract_customers"]["rows_extracted"] == customers
    assert md["customer_analytics/extract_orders"]["rows_extracted"] == orders
    first = ltv()
    assert len(first) == customers and {r[3] for r in first} <= {"low", "medium", "high"}
    # hand check of one customer's LTV against the source
    cid, n, value, _ = next(r for r in first if r[1] > 0)
    expected = src.execute(
        "SELECT count(DISTINCT o.order_id), round(sum(p.amount), 2) FROM orders o JOIN payments p ON p.order_id = o.order_id "
        "WHERE o.customer_id = ? AND o.status <> 'cancelled'", [cid]).fetchone()
    assert (n, float(value)) == (expected[0], expected[1])
    checks = [e for e in result.get_asset_check_evaluations()]
    assert checks and all(e.passed for e in checks)

    # rerun with nothing new: the upsert leaves the table exactly as it was
    result, rows, md = run(EXAMPLE)
    assert result.success and ltv() == first
    boundary = src.execute("SELECT count(*) FROM orders WHERE updated_at = (SELECT max(updated_at) FROM orders)").fetchone()[0]
    assert md["customer_analytics/extract_orders"]["rows_extracted"] == boundary  # only the watermark's own rows
    pay_boundary = src.execute(
        "SELECT count(*) FROM payments WHERE created_at = (SELECT max(created_at) FROM payments)").fetchone()[0]

    # one new order: the next run extracts only it (plus the boundary rows), and the LTV moves
    src.execute("INSERT INTO orders VALUES (999999, ?, '2030-01-01', 'completed', '2030-01-01 10:00:00', '2030-01-01 10:00:00')", [cid])
    src.execute("INSERT INTO payments VALUES (999999, 999999, 'card', 5000.00, '2030-01-01 10:00:00')")
    src.commit()
    result, rows, md = run(EXAMPLE)
    assert result.success
    # >= on the watermark re-reads the rows at it (harmless: merged by key), never older ones
    assert md["customer_analytics/extract_orders"]["rows_extracted"] == 1 + boundary
    assert md["customer_analytics/extract_payments"]["rows_extracted"] == 1 + pay_boundary
    after = dict((r[0], r) for r in ltv())
    assert after[cid][1] == n + 1 and float(after[cid][2]) == pytest.approx(float(value) + 5000) and after[cid][3] == "high"


SCRIPT_PIPELINE = """\
pipeline:
  name: scripted
  tasks:
    - name: step
      type: transform
      script: dataeng_assets_tests.pipeline_scripts:{fn}
      max_retries: {retries}
      retry_delay_s: 0.3
      backoff: exponential
      timeout_s: {timeout}
"""


def test_flaky_task_succeeds_on_its_third_attempt_with_backoff(data_home, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAKY_LOG", str(tmp_path / "attempts.log"))
    path = tmp_path / "scripted.yaml"
    path.write_text(SCRIPT_PIPELINE.format(fn="flaky", retries=3, timeout=60))
    result, rows, _ = run(path)
    assert result.success and rows["step"]["attempts"] == 3
    t = [float(x) for x in (tmp_path / "attempts.log").read_text().split()]
    gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
    # exponential with ±delay jitter: the 1st wait is 0.3 ± 0.3 s, the 2nd 0.9 ± 0.3 s
    assert gaps[1] >= 0.55 and gaps[1] > gaps[0], gaps


def test_a_task_over_its_timeout_fails_with_a_clear_message(data_home, tmp_path):
    path = tmp_path / "scripted.yaml"
    path.write_text(SCRIPT_PIPELINE.format(fn="slow", retries=0, timeout=0.5))
    result, rows, _ = run(path)
    assert not result.success and rows["step"]["status"] == "failure"
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "task step exceeded its timeout of 0.5 s" in failure.step_failure_data.error.message


def test_a_broken_file_is_reported_and_does_not_hide_the_others(data_home, tmp_path, monkeypatch):
    (tmp_path / "good.yaml").write_text(EXAMPLE.read_text().replace("transforms/", f"{EXAMPLE.parent}/transforms/")
                                        .replace("rules/", f"{EXAMPLE.parent}/rules/"))
    (tmp_path / "bad.yaml").write_text("pipeline:\n  name: bad\n  tasks:\n    - {name: a, type: teleport}\n")
    monkeypatch.setenv("DATAENG_PIPELINES_DIR", str(tmp_path))
    loaded = load_pipelines()
    assert [p.pipeline.name for p in loaded.pipelines] == ["customer_analytics"]
    [(path, message)] = loaded.errors
    assert path.name == "bad.yaml" and "bad.yaml:4: task a: unknown type 'teleport'" in message
    from dataeng_assets.defs.resources import build_resources

    d = dg.Definitions.merge(pipeline_definitions(), dg.Definitions(resources=build_resources()))
    specs = {s.key.to_user_string(): s for s in d.resolve_all_asset_specs()}
    assert "analytics/customer_ltv" in specs
    assert "unknown type 'teleport'" in specs["pipeline_errors/bad"].description
    assert d.resolve_job_def("customer_analytics_job")
