"""The code location loads, with the expected assets, groups, checks and automation."""

import dagster as dg

from dataeng_assets.definitions import defs

EXPECTED_ASSETS = {
    "lake/events/raw_events": "user_analytics",
    "lake/events/raw_events_quarantine": "user_analytics",
    "lake/analytics/user_metrics": "user_analytics",
    "analytics/user_daily_metrics": "user_analytics",
    "analytics/user_monthly_metrics": "user_analytics",
    "platform/optimizer_report": "platform",
    **{f"raw/{t}": "extract" for t in ("customers", "products", "orders", "order_items", "payments")},
}
UNPARTITIONED = {"platform/optimizer_report", *(k for k in EXPECTED_ASSETS if k.startswith("raw/"))}
EXPECTED_CHECKS = {("lake/analytics/user_metrics", "user_metrics_gate")}


def test_definitions_load_and_validate():
    d = defs()
    dg.Definitions.validate_loadable(d)
    graph = d.resolve_asset_graph()
    specs = {s.key.to_user_string(): s for s in d.resolve_all_asset_specs()}
    assert {k: s.group_name for k, s in specs.items()} == EXPECTED_ASSETS
    for key, spec in specs.items():
        assert spec.owners, key
        assert spec.kinds, key
        assert spec.description and spec.description.startswith("One "), key  # the grain sentence
        assert (graph.get(spec.key).partitions_def is None) == (key in UNPARTITIONED), key
    check_specs = [graph.get_check_spec(k) for k in graph.asset_check_keys]
    assert {(c.asset_key.to_user_string(), c.name) for c in check_specs} == EXPECTED_CHECKS
    assert all(c.blocking for c in check_specs)
    assert d.resolve_job_def("user_analytics_job")
    assert d.resolve_sensor_def("events_arrival_sensor")
    assert d.resolve_sensor_def("optimizer_on_success") and d.resolve_sensor_def("optimizer_on_failure")
    assert d.resolve_schedule_def("user_analytics_daily")


def test_warehouse_kind_follows_the_configured_engine(data_home, monkeypatch):
    kinds = lambda: {s.key.to_user_string(): s.kinds for s in defs().resolve_all_asset_specs()}  # noqa: E731
    assert "duckdb" in kinds()["analytics/user_daily_metrics"]
    monkeypatch.setenv("DATAENG_WAREHOUSE_URL", "postgresql://u@db.internal/wh")
    assert kinds()["analytics/user_daily_metrics"] == {"postgres"}


def test_definitions_load_without_touching_the_environment(tmp_path, monkeypatch):
    """No side effects at import or load: a broken URL only matters when a run starts."""
    monkeypatch.setenv("DATAENG_WAREHOUSE_URL", "nonsense://")
    monkeypatch.setenv("DATAENG_HOME", str(tmp_path / "never-created"))
    defs()
    assert not (tmp_path / "never-created").exists()
