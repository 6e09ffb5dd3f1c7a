-- Grain: one row per order line.
select
    order_item_id,
    order_id,
    product_id,
    quantity,
    unit_price,
    discount_amount,
    created_at,
    updated_at
from {{ source('raw', 'order_items') }}
where not _deleted
