-- Grain: one row per user per day (the seed's mv_user_revenue_summary): events, revenue and the
-- last event time. A view: always as current as fact_user_events.
{{ config(materialized='view') }}
select
    user_id,
    date,
    count(*) as event_count,
    sum(revenue_amount) as total_revenue,
    max(event_timestamp) as last_updated
from {{ source('activity', 'fact_user_events') }}
group by user_id, date
