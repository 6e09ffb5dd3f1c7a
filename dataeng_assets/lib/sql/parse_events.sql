-- Grain: one row per non-blank line of the day's JSONL drops, typed, with the reason it is
-- unusable (NULL when it is a good event). $1: list of local JSONL paths.
-- A line is read whole (unit-separator delimiter, no quoting): valid JSON escapes control
-- characters, so no JSON line contains a raw \x1f.
CREATE TABLE parsed AS
WITH lines AS (
    SELECT line,
           regexp_extract(filename, '(events/date=[0-9-]+/[^/]+)$', 1) AS source_file,
           CAST(regexp_extract(filename, 'date=([0-9]{4}-[0-9]{2}-[0-9]{2})', 1) AS DATE) AS date
    FROM read_csv($1, columns = {'line': 'VARCHAR'}, header = false, delim = E'\x1f',
                  quote = '', escape = '', auto_detect = false, filename = true,
                  max_line_size = 16777216)
    WHERE line IS NOT NULL AND trim(line) <> ''
),
objects AS (
    SELECT *, coalesce(json_valid(line), false) AS is_json,
           coalesce(CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' END, false)
               AS is_object
    FROM lines
),
fields AS (
    SELECT date, source_file, line, is_json, is_object,
           CASE WHEN is_object THEN json_extract_string(line, ['$.event_id', '$.user_id',
                '$.session_id', '$.event_type', '$.event_timestamp', '$.amount']) END AS f,
           CASE WHEN is_object THEN json_extract(line, '$.properties') END AS properties
    FROM objects
),
typed AS (
    SELECT date, source_file, line, is_json, is_object, properties,
           f[1] AS event_id,
           f[2] AS user_id_raw, TRY_CAST(f[2] AS BIGINT) AS user_id,
           f[3] AS session_id,
           f[4] AS event_type,
           TRY_CAST(f[5] AS TIMESTAMPTZ) AS event_timestamp,
           f[6] AS amount_raw, TRY_CAST(f[6] AS DOUBLE) AS amount
    FROM fields
)
SELECT date, source_file, event_id, user_id, session_id, event_type, event_timestamp, amount,
       CAST(properties AS VARCHAR) AS properties,
       coalesce(json_array_length(properties, '$.items'), 0)::INTEGER AS item_count,
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
       END AS reason,
       -- The raw line is kept only where it is needed: for quarantined rows.
       CASE WHEN NOT is_object OR event_id IS NULL OR event_timestamp IS NULL
                 OR (user_id_raw IS NOT NULL AND user_id IS NULL)
                 OR (amount_raw IS NOT NULL AND amount IS NULL)
                 OR event_type IS NULL OR CAST(event_timestamp AS DATE) <> date
                 OR (properties IS NOT NULL AND json_type(properties) <> 'OBJECT')
            THEN line END AS raw_line
FROM typed;

-- Grain: one row per (date, event_id) that occurs more than once among the good rows; the
-- first by (event_timestamp, content) is kept, the others are quarantined as duplicates.
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
);
