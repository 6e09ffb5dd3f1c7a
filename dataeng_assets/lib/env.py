"""The one environment helper: where the data home, lake, warehouse, source and landing live.

Every backend is chosen here, from environment variables read at call time (never at import).
Resource keys never change with the environment; only the implementation behind them does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


class ConfigError(ValueError):
    """A configuration variable holds a value the platform cannot use."""


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe for logs and metadata."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


@dataclass(frozen=True)
class Location:
    """A folder or object-store prefix: `kind` is "local" or "s3"."""

    variable: str
    url: str
    kind: str
    path: str  # local absolute path, or "bucket/prefix" for s3

    def describe(self) -> str:
        return f"{self.variable}={mask_url(self.url)}"


@dataclass(frozen=True)
class Database:
    """A database URL: `kind` is "duckdb", "sqlite" or "postgres"."""

    variable: str
    url: str
    kind: str
    path: str | None = None  # file path for duckdb/sqlite

    def describe(self) -> str:
        return f"{self.variable}={mask_url(self.url)}"


def data_home() -> Path:
    return Path(os.environ.get("DATAENG_HOME") or "./.dataeng").resolve()


def dagster_home() -> Path:
    return data_home() / "dagster_home"


def _location(variable: str, default_folder: Path, override: str | None = None) -> Location:
    raw = override or os.environ.get(variable)
    if not raw:
        return Location(variable, str(default_folder), "local", str(default_folder))
    if raw.startswith("s3://"):
        rest = raw[len("s3://") :].strip("/")
        if not rest or not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", rest):
            raise ConfigError(f"{variable}={mask_url(raw)}: expected s3://bucket[/prefix]")
        return Location(variable, raw, "s3", rest)
    if "://" in raw and not raw.startswith("file://"):
        raise ConfigError(f"{variable}={mask_url(raw)}: expected a folder path, file:// or s3:// URL")
    path = raw[len("file://") :] if raw.startswith("file://") else raw
    return Location(variable, raw, "local", str(Path(path).resolve()))


def _database(
    variable: str, default_file: Path, default_kind: str, override: str | None = None
) -> Database:
    raw = override or os.environ.get(variable)
    if not raw:
        return Database(variable, f"{default_kind}://{default_file}", default_kind, str(default_file))
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        parts = urlsplit(raw)
        if not (parts.hostname or "host=" in parts.query) or not parts.path.strip("/"):
            raise ConfigError(
                f"{variable}={mask_url(raw)}: a PostgreSQL URL needs a host and a database name"
            )
        return Database(variable, raw, "postgres")
    if scheme in ("duckdb", "sqlite"):
        path = raw.split("://", 1)[1]  # duckdb:///abs/path -> /abs/path
        if not path.strip("/"):
            raise ConfigError(f"{variable}={mask_url(raw)}: a {scheme} URL needs a file path")
        return Database(variable, raw, scheme, str(Path(path).resolve()))
    if not scheme and raw.endswith((".duckdb", ".db", ".sqlite")):
        kind = "duckdb" if raw.endswith(".duckdb") else "sqlite"
        return Database(variable, raw, kind, str(Path(raw).resolve()))
    raise ConfigError(
        f"{variable}={mask_url(raw)}: unsupported URL; expected postgresql://…, duckdb:///path "
        "or sqlite:///path"
    )


def lake_location(override: str | None = None) -> Location:
    return _location("DATAENG_LAKE_URL", data_home() / "lake", override)


def landing_location(override: str | None = None) -> Location:
    return _location("DATAENG_LANDING_URL", data_home() / "landing", override)


def warehouse_database(override: str | None = None) -> Database:
    return _database("DATAENG_WAREHOUSE_URL", data_home() / "warehouse.duckdb", "duckdb", override)


def source_database(override: str | None = None) -> Database:
    db = _database("DATAENG_SOURCE_URL", data_home() / "source.db", "sqlite", override)
    if db.kind == "duckdb":
        raise ConfigError(f"{db.describe()}: the OLTP source is SQLite or PostgreSQL")
    return db


def s3_endpoint() -> str | None:
    """The S3 endpoint override (moto, MinIO, ...), from the standard AWS variable."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@dataclass(frozen=True)
class KafkaSettings:
    """Kafka from `DATAENG_KAFKA_*`; None bootstrap means the landing zone is the stream."""

    bootstrap: str | None
    topic: str
    group: str
    client: dict = field(repr=False)  # librdkafka security options (SASL/TLS): never in a repr or log

    def describe(self) -> str:
        return f"kafka://{self.bootstrap}/{self.topic} (group {self.group})" if self.bootstrap else "landing zone"


_KAFKA_CLIENT_VARS = {  # environment variable -> librdkafka option
    "DATAENG_KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "DATAENG_KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "DATAENG_KAFKA_SASL_USERNAME": "sasl.username",
    "DATAENG_KAFKA_SASL_PASSWORD": "sasl.password",
    "DATAENG_KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
}


def kafka_settings(bootstrap: str | None = None, secrets: dict | None = None) -> KafkaSettings:
    """`secrets` (resolved `EnvVar`s from the resource) override the environment's."""
    client = {opt: os.environ[var] for var, opt in _KAFKA_CLIENT_VARS.items() if os.environ.get(var)}
    client.update({k: v for k, v in (secrets or {}).items() if v})
    return KafkaSettings(
        bootstrap=bootstrap or os.environ.get("DATAENG_KAFKA_BOOTSTRAP") or None,
        topic=os.environ.get("DATAENG_KAFKA_TOPIC") or "user-events",
        group=os.environ.get("DATAENG_KAFKA_GROUP") or "dataeng-stream",
        client=client,
    )
