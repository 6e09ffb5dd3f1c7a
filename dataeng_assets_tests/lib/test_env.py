"""The environment helper: defaults, URL forms, and errors that name the variable."""

import pytest

from dataeng_assets.lib import env


def test_defaults_live_in_the_data_home(data_home):
    assert env.warehouse_database().kind == "duckdb"
    assert env.warehouse_database().path == str(data_home / "warehouse.duckdb")
    assert env.lake_location().kind == "local" and env.lake_location().path == str(data_home / "lake")
    assert env.landing_location().path == str(data_home / "landing")
    assert env.source_database().kind == "sqlite"


@pytest.mark.parametrize(
    "var,value,kind",
    [
        ("DATAENG_WAREHOUSE_URL", "postgresql://u:p@db:5432/wh", "postgres"),
        ("DATAENG_WAREHOUSE_URL", "duckdb:///tmp/x.duckdb", "duckdb"),
        ("DATAENG_SOURCE_URL", "postgresql://u@db/src", "postgres"),
        ("DATAENG_LAKE_URL", "s3://my-bucket/lake", "s3"),
    ],
)
def test_urls_select_the_backend(data_home, monkeypatch, var, value, kind):
    monkeypatch.setenv(var, value)
    got = {
        "DATAENG_WAREHOUSE_URL": env.warehouse_database,
        "DATAENG_SOURCE_URL": env.source_database,
        "DATAENG_LAKE_URL": env.lake_location,
    }[var]()
    assert got.kind == kind


@pytest.mark.parametrize(
    "var,value,fn",
    [
        ("DATAENG_WAREHOUSE_URL", "mysql://u:hunter2@db/wh", env.warehouse_database),
        ("DATAENG_WAREHOUSE_URL", "postgresql://u:hunter2@/", env.warehouse_database),
        ("DATAENG_LAKE_URL", "s3://", env.lake_location),
        ("DATAENG_LANDING_URL", "gs://bucket/x", env.landing_location),
        ("DATAENG_SOURCE_URL", "duckdb:///x.duckdb", env.source_database),
    ],
)
def test_malformed_urls_name_the_variable_and_hide_the_password(data_home, monkeypatch, var, value, fn):
    monkeypatch.setenv(var, value)
    with pytest.raises(env.ConfigError) as err:
        fn()
    assert str(err.value).startswith(f"{var}=")
    assert "hunter2" not in str(err.value)


def test_mask_url():
    assert env.mask_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert env.mask_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_unreachable_postgres_warehouse_is_a_clear_error(data_home, monkeypatch):
    from dataeng_assets.lib.warehouse import Warehouse, WarehouseError
    from dataeng_assets_tests.conftest import free_port

    monkeypatch.setenv("DATAENG_WAREHOUSE_URL", f"postgresql://u:topsecret@127.0.0.1:{free_port()}/wh")
    with pytest.raises(WarehouseError) as err:
        Warehouse(env.warehouse_database()).check()
    assert "DATAENG_WAREHOUSE_URL=postgresql://u:***@127.0.0.1" in str(err.value)
    assert "topsecret" not in str(err.value)


def test_kafka_settings_come_from_the_environment_and_secrets_stay_out_of_sight(data_home, monkeypatch):
    import dagster as dg

    from dataeng_assets.defs.resources import build_resources

    assert env.kafka_settings().bootstrap is None and env.kafka_settings().describe() == "landing zone"
    monkeypatch.setenv("DATAENG_KAFKA_BOOTSTRAP", "b1:9093,b2:9093")
    monkeypatch.setenv("DATAENG_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DATAENG_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DATAENG_KAFKA_SASL_USERNAME", "svc-stream")
    monkeypatch.setenv("DATAENG_KAFKA_SASL_PASSWORD", "s3cret-value")
    k = env.kafka_settings()
    assert (k.bootstrap, k.topic, k.group) == ("b1:9093,b2:9093", "user-events", "dataeng-stream")
    assert k.client == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                        "sasl.username": "svc-stream", "sasl.password": "s3cret-value"}
    assert "s3cret" not in k.describe() and "s3cret" not in repr(k)
    stream = build_resources()["stream"]
    # the resource holds EnvVars: the UI and run config show the variable's name, not its value
    assert isinstance(stream.sasl_password, dg.EnvVar) and stream.sasl_password.env_var_name == "DATAENG_KAFKA_SASL_PASSWORD"
