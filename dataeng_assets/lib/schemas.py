"""Pandera schemas, one per table, used by the gate factory in `checks.py`."""

from __future__ import annotations

import pandera.pandas as pa

# The seed's data_quality_check: rows > 0, event_count >= 0, user_id not null; plus what the
# grain promises (one row per user per day) and non-negative item counts.
USER_METRICS = pa.DataFrameSchema(
    name="user_metrics",
    columns={
        "user_id": pa.Column("Int64", nullable=False),
        "date": pa.Column(nullable=False),
        "event_count": pa.Column("Int64", pa.Check.ge(0), nullable=False),
        "total_items": pa.Column("Int64", pa.Check.ge(0), nullable=False),
    },
    checks=[pa.Check(lambda df: len(df) > 0, element_wise=False, name="rows_gt_0", error="no rows")],
    unique=["user_id", "date"],
    strict=False,
)
