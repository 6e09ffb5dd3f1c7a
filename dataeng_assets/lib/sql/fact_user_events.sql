-- Grain: one row per event of the day, enriched with the customer version valid at the event
-- time and sessionized (seed 000's UserActivityETL, as warehouse SQL). Reads the temporary
-- table __events (the day's lake events, staged by the asset). Sessions are per (user, session)
-- within the partition window.
with enriched as (
    select
        e.date,
        e.event_id,
        e.user_id,
        e.session_id,
        e.event_type,
        e.event_timestamp,
        e.amount,
        e.item_count,
        c.customer_key,
        c.segment,
        c.country,
        c.registration_date,
        cast(e.event_timestamp as date) - c.registration_date as days_since_registration
    from __events as e
    left join analytics.dim_customer as c
        on c.customer_id = e.user_id
       and e.event_timestamp >= c.valid_from
       and e.event_timestamp < c.valid_to
),
sessionized as (
    select
        *,
        extract(epoch from (max(event_timestamp) over session_w - min(event_timestamp) over session_w))
            as session_duration,
        count(*) over session_w as events_in_session,
        row_number() over (partition by user_id, session_id order by event_timestamp, event_id) as event_sequence
    from enriched
    window session_w as (partition by user_id, session_id)
)
select
    date,
    cast(extract(year from date) * 10000 + extract(month from date) * 100 + extract(day from date) as integer)
        as date_key,
    event_id,
    user_id,
    session_id,
    customer_key,
    event_type as activity_type,
    event_timestamp,
    case when event_type = 'purchase' then coalesce(amount, 0) else 0 end as revenue_amount,
    item_count,
    segment,
    country,
    registration_date,
    days_since_registration,
    cast(session_duration as double precision) as session_duration,
    events_in_session,
    event_sequence,
    case when events_in_session = 1 then 1 else 0 end as is_bounce
from sessionized
