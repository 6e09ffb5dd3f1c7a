"""`dataeng validate`: the seed's standalone validator, its JSON report and exit codes."""

import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dataeng_assets.cli import main

RULES = """
tables:
  analytics.customers:
    schema:
      - {column: customer_id, type: BIGINT, nullable: false}
      - {column: email, type: STRING, nullable: false}
    checks:
      - {type: uniqueness, column: customer_id}
      - {type: null_rate, column: email, threshold: 0.05}
      - {type: regex, column: email, pattern: '^[^@]+@[^@]+\\.[a-z]+$', severity: warning}
      - {type: referential_integrity, column: country, references: countries.code}
      - {type: anomaly, metric: row_count}
"""


@pytest.fixture
def files(tmp_path):
    rules = tmp_path / "quality_rules.yaml"
    rules.write_text(RULES)
    good = pa.table({"customer_id": [1, 2, 3], "email": ["a@x.com", "b@x.com", "c@x.com"], "country": ["US"] * 3})
    bad = pa.table({"customer_id": [1, 1, 3], "email": ["a@x.com", "nope", "c@x.com"], "country": ["US"] * 3})
    pq.write_table(good, tmp_path / "customers.parquet")
    pacsv.write_csv(bad, tmp_path / "customers.csv")
    return tmp_path, rules


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_clean_file_passes_with_json_report(files, capsys):
    tmp, rules = files
    code, out, _ = run(capsys, "validate", str(tmp / "customers.parquet"), str(rules), "--output-format", "json",
                       "--fail-on-error")
    report = json.loads(out)
    assert code == 0 and report["passed"] and report["score"] == 100.0 and report["failed_checks"] == []
    assert report["table"] == "analytics.customers" and report["rows"] == 3
    assert {s["rule"] for s in report["skipped"]} == {"referential_integrity_country", "anomaly_row_count"}


def test_critical_failure_exits_1_only_with_fail_on_error(files, capsys):
    tmp, rules = files
    args = ["validate", str(tmp / "customers.csv"), str(rules), "--output-format", "json"]
    code, out, _ = run(capsys, *args)
    report = json.loads(out)
    assert code == 0 and not report["passed"]
    failed = {f["rule"]: f for f in report["failed_checks"]}
    assert set(failed) == {"uniqueness_customer_id", "regex_email"}
    assert {"table": "analytics.customers", "column": "customer_id", "check": "uniqueness", "observed": 1,
            "threshold": "0 duplicate keys", "severity": "critical"}.items() <= failed["uniqueness_customer_id"].items()
    assert failed["regex_email"]["sample"] == ["nope"]
    assert report["checks"] == 6 and report["score"] == round(100 * 4 / 6, 1)  # schema, 2 not-null, 3 rules
    assert run(capsys, *args, "--fail-on-error")[0] == 1


def test_warning_only_failure_does_not_fail(files, capsys, tmp_path):
    _, rules = files
    pq.write_table(pa.table({"customer_id": [1, 2], "email": ["a@x.com", "bad"]}), tmp_path / "customers_w.parquet")
    code, out, _ = run(capsys, "validate", str(tmp_path / "customers_w.parquet"), str(rules), "--table",
                       "analytics.customers", "--fail-on-error")
    assert code == 0 and "[warning] regex_email (email)" in out and "FAILED" in out


def test_bad_input_and_bad_rules_exit_2_with_a_message(files, capsys, tmp_path):
    tmp, rules = files
    code, _, err = run(capsys, "validate", str(tmp / "missing.parquet"), str(rules))
    assert code == 2 and "missing.parquet: no such file" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("tables:\n  analytics.customers:\n    checks:\n      - {type: null_rate}\n")
    code, _, err = run(capsys, "validate", str(tmp / "customers.parquet"), str(broken))
    assert code == 2 and "broken.yaml:4, table analytics.customers, rule #1 (null_rate): missing column" in err
    (tmp_path / "junk.parquet").write_text("not parquet")
    code, _, err = run(capsys, "validate", str(tmp_path / "junk.parquet"), str(rules), "--table", "analytics.customers")
    assert code == 2 and "cannot read as Parquet" in err
