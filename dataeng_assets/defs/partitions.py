"""The only place a partitions definition is declared."""

import dagster as dg

# The synthetic world's history starts here; the demo's fixed week ends on 2024-01-20.
DAILY_START_DATE = "2024-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START_DATE, timezone="UTC")
