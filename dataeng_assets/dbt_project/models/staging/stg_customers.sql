-- Grain: one row per customer (current state in the source; deleted customers excluded).
select
    customer_id,
    name as customer_name,
    email,
    segment,
    country,
    registration_date,
    created_at,
    updated_at
from {{ source('raw', 'customers') }}
where not _deleted
