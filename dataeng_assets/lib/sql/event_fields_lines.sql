-- Grain: one row per non-blank line of the drops (line path: survives malformed lines).
-- A line is read whole (unit-separator delimiter, no quoting): valid JSON escapes control
-- characters, so no JSON line contains a raw \x1f. Reads view `drop_lines` (events.py makes it
-- with DuckDB's CSV reader: one VARCHAR column `line`, plus the file name).
CREATE OR REPLACE VIEW fields AS
WITH lines AS (
    SELECT line,
           regexp_extract(filename, '(events/date=[0-9-]+/[^/]+)$', 1) AS source_file,
           CAST(regexp_extract(filename, 'date=([0-9]{4}-[0-9]{2}-[0-9]{2})', 1) AS DATE) AS date
    FROM drop_lines
    WHERE line IS NOT NULL AND trim(line) <> ''
),
objects AS (
    SELECT *, coalesce(json_valid(line), false) AS is_json,
           coalesce(CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' END, false)
               AS is_object
    FROM lines
),
extracted AS (
    SELECT *,
           CASE WHEN is_object THEN json_extract_string(line, ['$.event_id', '$.user_id',
                '$.session_id', '$.event_type', '$.event_timestamp', '$.amount']) END AS f,
           CASE WHEN is_object THEN json_extract(line, '$.properties') END AS properties
    FROM objects
)
SELECT date, source_file, line, is_json, is_object,
       f[1] AS event_id, f[2] AS user_id_raw, f[3] AS session_id, f[4] AS event_type,
       f[5] AS event_timestamp_raw, f[6] AS amount_raw, properties
FROM extracted
