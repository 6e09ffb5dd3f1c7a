"""Pandera models of the platform's main tables, keyed by dotted asset key.

Each becomes its table's blocking gate (`checks.py`), evaluated in the engine as SQL; columns the
rules files declare under `schema:` are merged in, so every table with rules has a model.
Uniqueness is declared at table level (`unique=[...]`): Pandera's ibis backend ignores
`Column(unique=True)`, and the table-level form is what the SQL translation reads.
"""

from __future__ import annotations

import pandera.pandas as pa

from dataeng_assets.lib.generate import COUNTRIES, EVENT_TYPES, ORDER_STATUSES, SEGMENTS

# The seed's email pattern (its validator's `email` rule).
EMAIL_PATTERN = r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$"

# The seed's data_quality_check: rows > 0 (a row_count rule in lake.yaml), event_count >= 0,
# user_id not null; plus what the grain promises: one row per user per day.
USER_METRICS = pa.DataFrameSchema(
    name="user_metrics",
    columns={
        "user_id": pa.Column("Int64", nullable=False),
        "date": pa.Column("date32[pyarrow]", nullable=False),
        "event_count": pa.Column("Int64", pa.Check.ge(0), nullable=False),
        "total_items": pa.Column("Int64", pa.Check.ge(0), nullable=False),
    },
    unique=["user_id", "date"],
)

RAW_EVENTS = pa.DataFrameSchema(
    name="raw_events",
    columns={
        "date": pa.Column("date32[pyarrow]", nullable=False),
        "event_id": pa.Column(str, nullable=False),
        # NULL user_id passes the lake on purpose: the user_metrics gate is the seed's stop for it
        "user_id": pa.Column("Int64", nullable=True),
        "event_type": pa.Column(str, pa.Check.isin(EVENT_TYPES), nullable=False),
        "event_timestamp": pa.Column("datetime64[us, UTC]", nullable=False),
        "amount": pa.Column(float, pa.Check.ge(0, raise_warning=True), nullable=True),
        "item_count": pa.Column("Int32", pa.Check.ge(0), nullable=False),
    },
    unique=["event_id"],
)

USER_DAILY_METRICS = pa.DataFrameSchema(
    name="user_daily_metrics",
    columns={
        "user_id": pa.Column("Int64", nullable=False),
        "date": pa.Column("date32[pyarrow]", nullable=False),
        "event_count": pa.Column("Int64", pa.Check.gt(0), nullable=False),
        "total_items": pa.Column("Int64", pa.Check.ge(0), nullable=False),
        # merged in by the user-activity run (fact_user_events), absent until then
        "bounce_rate": pa.Column(float, pa.Check.in_range(0, 1), nullable=True, required=False),
    },
    unique=["user_id", "date"],
)

FACT_USER_EVENTS = pa.DataFrameSchema(
    name="fact_user_events",
    columns={
        "date": pa.Column("date32[pyarrow]", nullable=False),
        "event_id": pa.Column(str, nullable=False),
        "activity_type": pa.Column(str, pa.Check.isin(EVENT_TYPES), nullable=False),
        "event_timestamp": pa.Column("datetime64[us]", nullable=False),
        "session_duration": pa.Column(float, pa.Check.ge(0), nullable=True),
        "segment": pa.Column(str, pa.Check.isin(SEGMENTS), nullable=True),
        "country": pa.Column(str, pa.Check.isin(COUNTRIES), nullable=True),
    },
    unique=["event_id"],
)

RAW_CUSTOMERS = pa.DataFrameSchema(
    name="customers",
    columns={
        "customer_id": pa.Column("Int64", nullable=False),
        "email": pa.Column(str, pa.Check.str_matches(EMAIL_PATTERN), nullable=True),
        "segment": pa.Column(str, pa.Check.isin(SEGMENTS), nullable=True),
        "country": pa.Column(str, pa.Check.isin(COUNTRIES), nullable=True),
    },
    unique=["customer_id"],
)

FACT_SALES = pa.DataFrameSchema(
    name="fact_sales",
    columns={
        "sale_id": pa.Column("Int64", nullable=False),
        "order_date": pa.Column("date32[pyarrow]", nullable=False),
        "quantity": pa.Column("Int32", pa.Check.gt(0), nullable=False),
        "unit_price": pa.Column(float, pa.Check.ge(0), nullable=False),
        "order_status": pa.Column(str, pa.Check.isin(ORDER_STATUSES), nullable=False),
    },
    unique=["sale_id"],
)

DIM_CUSTOMER = pa.DataFrameSchema(
    name="dim_customer",
    columns={
        "customer_key": pa.Column(str, nullable=False),
        "customer_id": pa.Column("Int64", nullable=False),
        "email": pa.Column(str, pa.Check.str_matches(EMAIL_PATTERN), nullable=True),
        "segment": pa.Column(str, pa.Check.isin(SEGMENTS), nullable=True),
        "valid_from": pa.Column("datetime64[us]", nullable=False),
        "valid_to": pa.Column("datetime64[us]", nullable=False),
    },
    unique=["customer_key"],
)

MODELS: dict[str, pa.DataFrameSchema] = {
    "lake.events.raw_events": RAW_EVENTS,
    "lake.analytics.user_metrics": USER_METRICS,
    "analytics.user_daily_metrics": USER_DAILY_METRICS,
    "analytics.fact_user_events": FACT_USER_EVENTS,
    "raw.customers": RAW_CUSTOMERS,
    "analytics.fact_sales": FACT_SALES,
    "analytics.dim_customer": DIM_CUSTOMER,
}
