"""Rules files: the seed's format parses; every mistake is named by file, line, table and rule."""

import pytest

from dataeng_assets.defs.quality.checks import RULES_DIR
from dataeng_assets.lib.quality.rules import CURRENT_DATE, RulesError, load_rules_dir, parse_rules

SEED = """
tables:
  analytics.customers:
    schema:
      - column: customer_id
        type: STRING
        nullable: false
      - column: created_at
        type: TIMESTAMP
        nullable: false
    checks:
      - type: uniqueness
        column: customer_id
      - type: null_rate
        column: email
        threshold: 0.05
      - type: range
        column: created_at
        min: '2020-01-01'
        max: CURRENT_DATE
      - type: referential_integrity
        column: country_code
        references: countries.country_code
  analytics.orders:
    checks:
      - type: row_count
        min: 1000
      - type: freshness
        column: created_at
        max_age_hours: 2
      - type: distribution
        column: order_total
        expected_mean: 150
        expected_stddev: 75
        tolerance: 0.2
"""


def test_the_seeds_example_parses():
    customers, orders = parse_rules(SEED, "quality_rules.yaml")
    assert [c.column for c in customers.schema] == ["customer_id", "created_at"]
    assert customers.schema[0].type == "string" and not customers.schema[0].nullable
    names = [r.name for r in customers.rules]
    assert names == ["uniqueness_customer_id", "null_rate_email", "range_created_at",
                     "referential_integrity_country_code"]
    rng = customers.rules[2]
    assert str(rng.params["min"]) == "2020-01-01" and rng.params["max"] == CURRENT_DATE
    assert all(r.severity == "critical" and r.blocking for r in customers.rules)
    assert [r.type for r in orders.rules] == ["row_count", "freshness", "distribution"]
    assert orders.rules[2].params["tolerance"] == 0.2


@pytest.mark.parametrize("body, message", [
    ("      - {type: uniq, column: a}", "rules.yaml:5, table shop.t, rule #1 (uniq): unknown check type 'uniq'"),
    ("      - {type: null_rate}", "rules.yaml:5, table shop.t, rule #1 (null_rate): missing column"),
    ("      - {type: null_rate, column: a, threshold: 2}", "threshold is a fraction between 0 and 1"),
    ("      - {type: range, column: a, min: yesterday}", "min must be a number, a date"),
    ("      - {type: regex, column: a, pattern: '('}", "pattern does not compile"),
    ("      - {type: row_count, min: 1, severity: high}", "severity is one of critical, warning"),
    ("      - {type: custom, sql: 'a > 0; DROP TABLE t'}", "one boolean SQL expression"),
    ("      - {type: referential_integrity, column: a, references: t}", "references is table.column"),
    ("      - {type: anomaly, metric: median}", "metric is one of row_count, null_rate, mean, sum"),
    ("      - {type: anomaly, metric: mean}", "anomaly needs `column:`"),
    ("      - {type: row_count, min: 1, bogus: 2}", "unknown key(s) ['bogus'] for row_count"),
    ("      - {type: row_count, min: 1}\n      - {type: row_count, max: 9}", "rule row_count: duplicate rule name"),
])
def test_mistakes_name_file_line_table_and_rule(body, message):
    text = f"tables:\n  shop.t:\n    partition_column: d\n    checks:\n{body}\n"
    with pytest.raises(RulesError) as err:
        parse_rules(text, "rules.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("rules.yaml")


def test_broken_yaml_and_wrong_shape():
    with pytest.raises(RulesError, match=r"rules.yaml:3: not valid YAML"):
        parse_rules("tables:\n  a: [\n", "rules.yaml")
    with pytest.raises(RulesError, match="a `tables:` mapping"):
        parse_rules("checks: []", "rules.yaml")
    with pytest.raises(RulesError, match="name it by its asset key"):
        parse_rules("tables:\n  Orders:\n    checks: []\n", "rules.yaml")
    with pytest.raises(RulesError, match=r"column a: unknown type 'BLOB'"):
        parse_rules("tables:\n  s.t:\n    schema:\n      - {column: a, type: BLOB}\n", "rules.yaml")


def test_the_shipped_rules_load():
    tables = load_rules_dir(RULES_DIR)
    assert "lake.analytics.user_metrics" in tables and "analytics.fact_sales" in tables
    kinds = {r.type for t in tables.values() for r in t.rules}
    assert kinds >= {"uniqueness", "null_rate", "range", "referential_integrity", "point_in_time", "row_count",
                     "freshness", "distribution", "regex", "accepted_values", "custom", "anomaly"}
