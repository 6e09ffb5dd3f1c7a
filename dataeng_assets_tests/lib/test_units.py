"""Pure pieces: identifier quoting, type compatibility, transient-error classification, SQL files."""

import pyarrow as pa
import pytest

from dataeng_assets.lib import sql
from dataeng_assets.lib.retry import backoff_delay, is_transient, with_backoff
from dataeng_assets.lib.warehouse import arrow_to_sql, ident, qualified


@pytest.mark.parametrize("name", ["user_id", "_x", "T1"])
def test_ident_quotes_valid_names(name):
    assert ident(name) == f'"{name}"'


@pytest.mark.parametrize("name", ['a"b', "a; DROP TABLE x", "1abc", "", "a b", "x" * 64])
def test_ident_rejects_anything_else(name):
    with pytest.raises(ValueError):
        ident(name)


def test_qualified():
    assert qualified("analytics", "t") == '"analytics"."t"'


def test_arrow_types_map_per_dialect():
    assert arrow_to_sql(pa.float64(), "duckdb") == "DOUBLE"
    assert arrow_to_sql(pa.float64(), "postgres") == "DOUBLE PRECISION"
    assert arrow_to_sql(pa.timestamp("us", tz="UTC"), "postgres") == "TIMESTAMPTZ"
    assert arrow_to_sql(pa.string(), "postgres") == "TEXT"
    assert arrow_to_sql(pa.int32(), "duckdb") == "INTEGER"


def _kafka(code: int):
    from confluent_kafka import KafkaError, KafkaException

    return KafkaException(KafkaError(code))


@pytest.mark.parametrize(
    "exc,transient",
    [
        (ConnectionResetError("peer reset"), True),
        (TimeoutError(), True),
        (OSError("AWS Error SLOW_DOWN during PutObject: slow down"), True),
        (OSError("When reading: HTTP status 503"), True),
        (FileNotFoundError("x"), False),
        (OSError("No space left on device"), False),
        (ValueError("bad row"), False),
        (RuntimeError("IO Error: Could not set lock on file"), True),
        (_kafka(-195), True),  # _TRANSPORT: the broker went away
        (_kafka(3), False),  # UNKNOWN_TOPIC_OR_PART: a configuration error
    ],
)
def test_is_transient(exc, transient):
    assert is_transient(exc) is transient


def test_with_backoff_retries_transient_errors_only():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("blip")
        return "ok"

    assert with_backoff(flaky, "x", base=0.001) == "ok" and len(calls) == 3
    calls.clear()

    def broken():
        calls.append(1)
        raise ValueError("data error")

    with pytest.raises(ValueError):
        with_backoff(broken, "x", base=0.001)
    assert len(calls) == 1


def test_backoff_grows_exponentially():
    assert all(0 <= backoff_delay(n, 1.0) <= 2**n for n in range(6))
    assert max(backoff_delay(5, 1.0) for _ in range(200)) > 4  # jitter spans the whole window


def test_sql_files_have_their_grain_and_no_interpolation():
    for name in ("parse_events", "raw_events", "raw_events_quarantine", "user_metrics",
                 "user_monthly_metrics", "user_monthly_metrics_orphans", "event_fields_json", "event_fields_lines"):
        text = sql.load(name)
        assert "{" not in text.replace("{'", "").replace("{}", "") or name.startswith("event_fields"), name
        assert text.lstrip().startswith("--"), name
