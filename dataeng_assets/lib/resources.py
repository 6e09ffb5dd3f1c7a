"""Resources over the environment helper. Configuration is read when a run starts, and a bad or
unreachable URL fails there with a message naming the variable and its (masked) value."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from dataeng_assets.lib import env
from dataeng_assets.lib.lake import Lake
from dataeng_assets.lib.warehouse import Session, Warehouse, WarehouseError


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake: `DATAENG_LAKE_URL` (folder or s3://bucket/prefix)."""

    url: str | None = None  # explicit override, for tests; otherwise the environment

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        env.lake_location(self.url)  # raises ConfigError naming the variable

    def get(self) -> Lake:
        return Lake(env.lake_location(self.url))


class LandingZone(dg.ConfigurableResource):
    """Where daily drops land: `DATAENG_LANDING_URL` (folder or s3://bucket/prefix)."""

    url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        env.landing_location(self.url)

    def get(self) -> Lake:
        return Lake(env.landing_location(self.url))


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: `DATAENG_WAREHOUSE_URL` (DuckDB file by default, or postgresql://…)."""

    url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        wh = self.get()
        try:
            wh.check()
        except WarehouseError:
            raise
        except Exception as e:  # noqa: BLE001 - any driver error becomes one clear message
            raise WarehouseError(f"{wh.describe()}: unreachable: {type(e).__name__}: {e}") from None

    def get(self) -> Warehouse:
        return Warehouse(env.warehouse_database(self.url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.get().session() as s:
            yield s


class StreamResource(dg.ConfigurableResource):
    """The user-event stream: Kafka when `DATAENG_KAFKA_BOOTSTRAP` is set (topic, group and
    SASL/TLS options from `DATAENG_KAFKA_*`), else the landing zone's JSONL drops, so the demo
    needs no broker. Budgets and thresholds of the micro-batch and its checks."""

    bootstrap: str | None = None  # override, for tests; otherwise the environment
    sasl_username: str | None = None  # set from dg.EnvVar when the environment has them
    sasl_password: str | None = None
    max_records: int = 500_000  # per run
    max_seconds: float = 60.0  # per run; a micro-batch in flight is finished
    batch_records: int = 100_000  # per micro-batch: one lake write and one warehouse transaction
    lateness_seconds: float = 600.0  # watermark = max event time - lateness
    session_gap_seconds: float = 1800.0
    idle_partition_seconds: float = 300.0  # a partition silent this long stops holding the watermark
    route_processed: bool = False  # also produce enriched events to processed-{event_type}
    lag_warn_records: int = 100_000  # consumer_lag warns above (files, for the landing zone: 0)
    dlq_rate_max: float = 0.01  # dlq_rate fails above this share of a run's messages

    def settings(self) -> env.KafkaSettings:
        return env.kafka_settings(self.bootstrap, {"sasl.username": self.sasl_username,
                                                   "sasl.password": self.sasl_password})

    def kafka_source(self):
        """A KafkaSource on the configured topic, or None when Kafka is not configured."""
        from dataeng_assets.lib.streaming.ingest import KafkaSource

        k = self.settings()
        return KafkaSource(k.bootstrap, k.topic, k.group, k.client) if k.bootstrap else None

    @contextmanager
    def open(self, landing: Lake, session: Session):
        """The source: Kafka, or the landing zone."""
        from dataeng_assets.lib.streaming.ingest import LandingSource

        source = self.kafka_source() or LandingSource(landing, session)
        try:
            yield source
        finally:
            source.close()
