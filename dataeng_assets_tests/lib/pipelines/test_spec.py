"""Pipeline files: the seed's format parses; every mistake names the file, the line and the task."""

from pathlib import Path

import pytest

from dataeng_assets.lib.pipelines.spec import PipelineError, cron_problem, find_cycle, load_file

SHIPPED = Path(__file__).resolve().parents[3] / "pipelines" / "customer_analytics.yaml"

GOOD = """\
pipeline:
  name: shop
  schedule: "0 2 * * *"
  owner: team:analytics
  tasks:
    - name: extract_orders
      type: extract
      source: sqlite:///tmp/src.db/orders
      incremental_field: updated_at
    - name: metrics
      type: transform
      depends_on: [extract_orders]
      sql: metrics.sql
    - name: load
      type: load
      depends_on: [metrics]
      target: duckdb:///tmp/wh.duckdb/analytics.metrics
      mode: upsert
      keys: [id]
  defaults: {max_retries: 2, retry_delay_s: 5, backoff: linear, timeout_s: 60}
"""


def write(tmp_path, text: str, sql: bool = True) -> Path:
    if sql:
        (tmp_path / "metrics.sql").write_text("SELECT 1 AS id")
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    return path


def test_a_good_file_parses_with_defaults_applied(tmp_path):
    p = load_file(write(tmp_path, GOOD))
    assert (p.name, p.schedule, p.owner) == ("shop", "0 2 * * *", "team:analytics")
    assert [t.name for t in p.tasks] == ["extract_orders", "metrics", "load"]
    load = p.task("load")
    assert (load.line, load.max_retries, load.retry_delay_s, load.backoff, load.timeout_s) == (14, 2, 5.0, "linear", 60.0)
    assert load.params == {"target": "duckdb:///tmp/wh.duckdb/analytics.metrics", "mode": "upsert", "keys": ["id"]}


def test_the_shipped_example_is_valid():
    p = load_file(SHIPPED)
    assert p.name == "customer_analytics" and len(p.tasks) == 6


@pytest.mark.parametrize("edit, message", [
    (("type: transform", "type: transmogrify"), "shop.yaml:10: task metrics: unknown type 'transmogrify'"),
    (("depends_on: [extract_orders]", "depends_on: [extract_users]"), "shop.yaml:10: task metrics: depends_on unknown task 'extract_users'"),
    (('"0 2 * * *"', '"0 25 * * *"'), "bad cron '0 25 * * *': field 2 (25): '25' is not in 0-23"),
    (("sqlite:///tmp/src.db/orders", "mysql://h/db/orders"), "shop.yaml:6: task extract_orders: source URL scheme 'mysql' is not supported"),
    (("duckdb:///tmp/wh.duckdb/analytics.metrics", "s3://b/analytics.metrics"), "task load: target URL scheme 's3' is not supported"),
    (("sql: metrics.sql", "sql: nowhere.sql"), "shop.yaml:10: task metrics: sql file nowhere.sql not found"),
    (("- name: load\n", "- name: metrics\n"), "shop.yaml:14: task metrics: duplicate task name"),
    (("mode: upsert\n      keys: [id]", "mode: upsert"), "task load: mode upsert needs `keys: [...]`"),
    (("mode: upsert", "mode: merge"), "task load: mode is one of append, upsert, replace"),
    (("incremental_field: updated_at", "incremental_field: updated_at\n      bogus: 1"), "task extract_orders: unknown key(s) ['bogus']"),
    (("analytics.metrics", "metrics"), "task load: target must end in /schema.table"),
])
def test_every_mistake_names_file_line_and_task(tmp_path, edit, message):
    with pytest.raises(PipelineError) as err:
        load_file(write(tmp_path, GOOD.replace(*edit)))
    assert message in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "shop.yaml"))


def test_a_cycle_is_refused_and_printed(tmp_path):
    text = GOOD.replace("depends_on: [extract_orders]", "depends_on: [extract_orders, load]")
    with pytest.raises(PipelineError, match=r"task metrics: dependency cycle metrics -> load -> metrics"):
        load_file(write(tmp_path, text))
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None


def test_unset_variable_and_broken_yaml(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    with pytest.raises(PipelineError, match=r"task extract_orders: source: environment variable NO_SUCH_VAR is not set"):
        load_file(write(tmp_path, GOOD.replace("sqlite:///tmp/src.db", "${NO_SUCH_VAR}")))
    with pytest.raises(PipelineError, match=r"shop.yaml:\d+: not valid YAML"):
        load_file(write(tmp_path, "pipeline:\n  tasks: [\n"))


@pytest.mark.parametrize("expr, ok", [
    ("0 2 * * *", True), ("*/15 * * * 1-5", True), ("0 0 1 jan,jul *", True), ("@daily", True),
    ("0 2 * *", False), ("60 * * * *", False), ("* * * * 8", False), ("*/0 * * * *", False),
])
def test_cron(expr, ok):
    assert (cron_problem(expr) is None) == ok
