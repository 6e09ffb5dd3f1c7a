-- Grain: one row per JSON line of the drops (fast path: DuckDB's JSON reader).
-- Every field is read as text and typed later by the same SQL as the line path, so both paths
-- give identical rows. Fails on a malformed or non-object line; the caller then uses the line
-- path (event_fields_lines.sql). Reads view `drop_records` (events.py makes it with DuckDB's JSON
-- reader over the local JSONL paths, every field as text, plus the file name).
CREATE OR REPLACE VIEW fields AS
SELECT CAST(regexp_extract(filename, 'date=([0-9]{4}-[0-9]{2}-[0-9]{2})', 1) AS DATE) AS date,
       regexp_extract(filename, '(events/date=[0-9-]+/[^/]+)$', 1) AS source_file,
       NULL::VARCHAR AS line,
       true AS is_json,
       true AS is_object,
       event_id, user_id AS user_id_raw, session_id, event_type,
       event_timestamp AS event_timestamp_raw, amount AS amount_raw, properties
FROM drop_records
