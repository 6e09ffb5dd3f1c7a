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
    "platform/quality_report": "platform",
    **{f"raw/{t}": "extract" for t in ("customers", "products", "orders", "order_items", "payments")},
    **{f"staging/stg_{t}": "warehouse" for t in ("customers", "products", "orders", "order_items", "payments")},
    "snapshots/customers_snapshot": "warehouse",
    "analytics/holidays": "warehouse",
    "analytics/dim_date": "warehouse",
    "analytics/dim_customer": "warehouse",
    "analytics/dim_product": "warehouse",
    "analytics/fact_sales": "warehouse",
    "analytics/sales_by_month_segment": "warehouse",
    "analytics/customer_metrics": "marts",
    "analytics/fact_user_events": "user_activity",
    "analytics/fact_user_activity": "user_activity",
    "analytics/user_revenue_summary": "user_activity",
}
STREAM_ASSETS = {  # one micro-batch step; its checks are consumer_lag and dlq_rate
    k: "streaming" for k in ("lake/stream/user_events", "stream/events_dlq", "stream/user_events",
                             "stream/late_events", "stream/pageviews_5m", "stream/purchases_15m", "stream/sessions")
}
PARTITIONED = {
    "lake/events/raw_events", "lake/events/raw_events_quarantine", "lake/analytics/user_metrics",
    "analytics/user_daily_metrics", "analytics/user_monthly_metrics", "analytics/fact_sales",
    "analytics/sales_by_month_segment", "analytics/fact_user_events",
}
NOT_TABLES = {"platform/optimizer_report", "platform/quality_report"}
# the shipped declarative pipeline (pipelines/customer_analytics.yaml)
PIPELINE_ASSETS = {
    "customer_analytics/extract_customers": "customer_analytics",
    "customer_analytics/extract_orders": "customer_analytics",
    "customer_analytics/extract_payments": "customer_analytics",
    "customer_analytics/transform_metrics": "customer_analytics",
    "analytics/customer_ltv": "customer_analytics",
}


def test_definitions_load_and_validate():
    d = defs()
    dg.Definitions.validate_loadable(d)
    graph = d.resolve_asset_graph()
    specs = {s.key.to_user_string(): s for s in d.resolve_all_asset_specs()}
    assert {k: s.group_name for k, s in specs.items()} == {**EXPECTED_ASSETS, **PIPELINE_ASSETS, **STREAM_ASSETS}
    for key, spec in specs.items():
        assert spec.owners, key
        assert spec.kinds, key
        assert spec.description and spec.description.startswith("One "), key  # the grain sentence
        assert (graph.get(spec.key).partitions_def is not None) == (key in PARTITIONED), key
    check_specs = [graph.get_check_spec(k) for k in graph.asset_check_keys]
    ours = [c for c in check_specs if "severity" in (c.metadata or {})]
    for key in set(EXPECTED_ASSETS) - NOT_TABLES:  # every table: a Pandera gate and YAML rules
        mine = {c.name: c for c in ours if c.asset_key.to_user_string() == key}
        gate = mine.pop(f"{key.split('/')[-1]}_gate", None)
        assert gate is not None and gate.blocking, key
        assert mine, f"{key} has no YAML rules"
    for c in ours:
        assert c.blocking == (c.metadata["severity"] == "critical"), c.name
    dbt_tests = {(c.asset_key.to_user_string(), c.name) for c in check_specs
                 if c not in ours and c.asset_key.to_user_string() not in STREAM_ASSETS}
    assert ("analytics/dim_customer", "assert_one_current_row_per_customer") in dbt_tests
    assert ("analytics/fact_sales", "relationships_fact_sales_customer_key__customer_key__ref_dim_customer_") in dbt_tests
    assert len(dbt_tests) == 37
    assert d.resolve_job_def("user_analytics_job") and d.resolve_job_def("warehouse_job")
    assert d.resolve_job_def("user_activity_job")
    assert d.resolve_sensor_def("events_arrival_sensor")
    assert d.resolve_sensor_def("quality_alerts")
    assert d.resolve_sensor_def("optimizer_on_success") and d.resolve_sensor_def("optimizer_on_failure")
    assert d.resolve_schedule_def("user_analytics_daily")
    assert d.resolve_schedule_def("customer_analytics_schedule").cron_schedule == "0 2 * * *"
    assert d.resolve_job_def("customer_analytics_job")
    assert d.resolve_job_def("stream_job") and d.resolve_sensor_def("stream_sensor")
    stream_checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys
                     if k.asset_key.to_user_string() in STREAM_ASSETS}
    assert {("lake/stream/user_events", "consumer_lag"), ("stream/events_dlq", "dlq_rate")} <= stream_checks
    for key in set(STREAM_ASSETS) - {"lake/stream/user_events"}:  # rules/stream.yaml proves each key
        assert any(a == key and name.startswith("uniqueness") for a, name in stream_checks), key


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
