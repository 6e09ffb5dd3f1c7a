-- Grain: one row per product (SCD Type 1: current attributes).
select
    {{ dbt.hash('product_id') }} as product_key,
    product_id,
    product_name,
    category,
    unit_price
from {{ ref('stg_products') }}
