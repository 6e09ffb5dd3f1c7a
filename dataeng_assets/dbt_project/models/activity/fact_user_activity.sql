-- Grain: one row per user event (Kimball activity fact): date_key, the customer version valid at
-- the event time, activity type and revenue. A view over the enriched events the ETL writes.
{{ config(materialized='view') }}
select
    event_id,
    date_key,
    customer_key,
    activity_type,
    revenue_amount
from {{ source('activity', 'fact_user_events') }}
