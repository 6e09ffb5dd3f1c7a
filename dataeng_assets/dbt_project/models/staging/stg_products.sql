-- Grain: one row per product.
select
    product_id,
    name as product_name,
    category,
    unit_price,
    created_at,
    updated_at
from {{ source('raw', 'products') }}
where not _deleted
