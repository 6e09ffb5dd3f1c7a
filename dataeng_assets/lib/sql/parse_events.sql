-- Grain: one row per record of the drops, typed, with the reason it is unusable (NULL when it
-- is a good event). Reads table `fields` (event_fields_json.sql or event_fields_lines.sql).
CREATE TABLE parsed AS
WITH typed AS (
    SELECT *,
           TRY_CAST(user_id_raw AS BIGINT) AS user_id,
           TRY_CAST(event_timestamp_raw AS TIMESTAMPTZ) AS event_timestamp,
           TRY_CAST(amount_raw AS DOUBLE) AS amount
    FROM fields
),
judged AS (
    SELECT *,
           CASE
               WHEN NOT is_json THEN 'malformed_json'
               WHEN NOT is_object THEN 'not_a_json_object'
               WHEN event_id IS NULL OR event_id = '' THEN 'missing_event_id'
               WHEN event_type IS NULL OR event_type = '' THEN 'missing_event_type'
               WHEN user_id_raw IS NOT NULL AND user_id IS NULL THEN 'invalid_user_id'
               WHEN event_timestamp IS NULL THEN 'invalid_event_timestamp'
               WHEN amount_raw IS NOT NULL AND amount IS NULL THEN 'invalid_amount'
               WHEN properties IS NOT NULL AND json_type(properties) <> 'OBJECT' THEN 'invalid_properties'
               WHEN CAST(event_timestamp AS DATE) <> date THEN 'event_date_outside_partition'
           END AS reason
    FROM typed
)
SELECT date, source_file, event_id, user_id, session_id, event_type, event_timestamp, amount,
       CAST(properties AS VARCHAR) AS properties,
       coalesce(json_array_length(properties, '$.items'), 0)::INTEGER AS item_count,
       reason,
       -- Kept only for quarantined rows: the line itself when it is not a JSON object, else the
       -- record's fields as received (text), the same whichever path read them.
       CASE WHEN reason IS NULL THEN NULL
            WHEN NOT is_object THEN line
            ELSE CAST(to_json(struct_pack(event_id := event_id, user_id := user_id_raw,
                      session_id := session_id, event_type := event_type,
                      event_timestamp := event_timestamp_raw, amount := amount_raw,
                      properties := properties)) AS VARCHAR)
       END AS raw_line
FROM judged;

-- Grain: one row per good record whose (date, event_id) occurs more than once; the first by
-- (event_timestamp, content) is kept, the others are quarantined as duplicates.
CREATE TABLE duplicates AS
SELECT date, event_id, user_id, session_id, event_type, event_timestamp, amount, properties,
       item_count, source_file, rank
FROM (
    SELECT *, row_number() OVER (
               PARTITION BY date, event_id
               ORDER BY event_timestamp, user_id, session_id, event_type, amount, properties
           ) AS rank
    FROM parsed
    WHERE reason IS NULL
      AND (date, event_id) IN (
          SELECT (date, event_id) FROM parsed WHERE reason IS NULL
          GROUP BY date, event_id HAVING count(*) > 1
      )
)
