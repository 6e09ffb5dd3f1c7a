-- Grain: one row per message of a micro-batch (table `batch`: source, position, payload), typed
-- and enriched as seed 000's EventStreamProcessor does, with the reason it is unusable (NULL
-- when it is a good event).
CREATE TABLE stream_parsed AS
WITH decoded AS (
    SELECT source, position, payload,
           json_valid(payload) AS is_json,
           CASE WHEN json_valid(payload) THEN json_type(CAST(payload AS JSON)) = 'OBJECT' ELSE false END AS is_object,
           CASE WHEN json_valid(payload) THEN CAST(payload AS JSON) END AS j
    FROM batch
),
fields AS (
    SELECT *,
           j ->> 'event_id' AS event_id,
           j ->> 'user_id' AS user_id_raw,
           j ->> 'session_id' AS session_id,
           j ->> 'event_type' AS event_type,
           coalesce(j ->> 'event_timestamp', j ->> 'timestamp') AS ts_raw,
           j ->> 'amount' AS amount_raw
    FROM decoded
),
typed AS (
    SELECT *,
           TRY_CAST(user_id_raw AS BIGINT) AS user_id,
           TRY_CAST(ts_raw AS TIMESTAMPTZ) AS event_time,
           TRY_CAST(amount_raw AS DOUBLE) AS amount
    FROM fields
)
SELECT source, position, payload, event_id, user_id, session_id, event_type, event_time, amount,
       CASE
           WHEN NOT is_json THEN 'malformed_json'
           WHEN NOT is_object THEN 'not_a_json_object'
           WHEN event_id IS NULL OR event_id = '' THEN 'missing_event_id'
           WHEN event_type IS NULL OR event_type = '' THEN 'missing_event_type'
           WHEN user_id IS NULL THEN 'invalid_user_id'
           WHEN event_time IS NULL THEN 'invalid_event_timestamp'
           -- a clock a day ahead would drag the watermark forward and make every event late
           WHEN event_time > CAST($processed_at AS TIMESTAMPTZ) + INTERVAL '1 day' THEN 'event_time_in_future'
           WHEN amount_raw IS NOT NULL AND amount IS NULL THEN 'invalid_amount'
           WHEN amount < 0 THEN 'negative_amount'
       END AS error
FROM typed;

-- Grain: one row per good event (the first delivery of each event_id in the batch), enriched.
CREATE TABLE stream_good AS
SELECT event_id, user_id, session_id, event_type, event_time, amount,
       CAST($processed_at AS TIMESTAMPTZ) AS processed_at,
       -- the seed's revenue buckets, for purchases: < 10 low, < 50 medium, < 200 high, else premium
       CASE WHEN event_type <> 'purchase' THEN NULL
            WHEN coalesce(amount, 0) < 10 THEN 'low'
            WHEN amount < 50 THEN 'medium'
            WHEN amount < 200 THEN 'high'
            ELSE 'premium' END AS revenue_category,
       event_type = 'purchase' AND coalesce(amount, 0) > 100 AS is_high_value,
       CAST(hour(event_time) AS INTEGER) AS hour_of_day,
       CAST(isodow(event_time) - 1 AS INTEGER) AS day_of_week,  -- Python's weekday(): Monday 0
       strftime(event_time, '%Y-%m-%dT%H') AS hour,
       source, position,
       -- what the watermark is kept per: a Kafka partition (position partition:offset), or the landing zone
       CASE WHEN contains(position, ':') THEN source || ':' || split_part(position, ':', 1)
            ELSE 'landing' END AS stream_partition
FROM stream_parsed
WHERE error IS NULL
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY source, position) = 1;
