"""The main job: `dataeng demo` on the embedded defaults, clean and with defects."""

import json
import subprocess
import sys
from pathlib import Path

from dataeng_assets.lib import env
from dataeng_assets.lib.warehouse import Warehouse

DATAENG = str(Path(sys.executable).with_name("dataeng"))
SMALL = ["--days", "3", "--events-per-day", "3000", "--users", "300", "--quiet"]


def demo(*args):
    return subprocess.run([DATAENG, "demo", *SMALL, *args], capture_output=True, text=True, timeout=300)


def test_demo_materializes_everything_and_prints_the_summary(data_home):
    out = demo()
    assert out.returncode == 0, out.stdout + out.stderr
    table = out.stdout
    for asset in ("lake/events/raw_events", "lake/analytics/user_metrics", "analytics/user_daily_metrics",
                  "analytics/user_monthly_metrics"):
        row = next(line for line in table.splitlines() if line.startswith(asset + " "))
        assert row.split()[1] == "3", row  # three partitions
    assert "success" in table
    with Warehouse(env.warehouse_database()).session() as s:
        assert s.fetchone("SELECT count(DISTINCT date) FROM analytics.user_daily_metrics")[0] == 3
        assert s.fetchone("SELECT sum(event_count) FROM analytics.user_daily_metrics")[0] == 9_000
    assert (data_home / "dagster_home" / "dagster.yaml").exists()
    assert "**Overall quality score: 100.0%**" in out.stdout, out.stdout
    assert json.loads((data_home / "quality" / "quality_report.json").read_text())["failing"] == 0
    assert "alerts: 0 new" in out.stdout


def test_demo_with_defects_stops_at_the_gate(data_home):
    out = demo("--defects")
    assert out.returncode == 1
    assert "GATE FAILED: lake/analytics/user_metrics / user_metrics_gate" in out.stdout
    failed_checks = [line for line in out.stdout.splitlines() if line.startswith(("GATE FAILED: ", "WARNING: "))]
    alerts = [json.loads(line) for line in (data_home / "alerts" / "alerts.jsonl").read_text().splitlines()]
    check_alerts = [a for a in alerts if a["kind"] == "check_failed"]
    assert len(check_alerts) == len(failed_checks) == len({a["id"] for a in check_alerts})  # one per failure
    gate = next(a for a in check_alerts if a["check"] == "user_metrics_gate")
    assert gate["severity"] == "critical" and gate["observed"].startswith("user_id_not_null: ")
    assert all(a["run_id"] for a in alerts) and not any(a["kind"] == "check_recovered" for a in alerts)
    assert "analytics/user_daily_metrics (not run)" in out.stdout
    with Warehouse(env.warehouse_database()).session() as s:
        assert s.fetchone("SELECT count(*) FROM information_schema.tables WHERE table_name = 'user_daily_metrics'")[0] == 0


def test_malformed_url_fails_before_any_work(data_home, monkeypatch):
    monkeypatch.setenv("DATAENG_WAREHOUSE_URL", "postgres://u:pw@/")
    out = demo()
    assert out.returncode == 2
    assert "DATAENG_WAREHOUSE_URL=postgres://u:***@/" in out.stderr
    assert not (data_home / "landing").exists()
