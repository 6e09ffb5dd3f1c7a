-- Grain: one row per order line, dated by the order. Incremental by order date: each run
-- replaces the window [min_date, max_date) that Dagster passes as --vars (a partition or a range).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where order_date >= cast('{{ var('min_date') }}' as date) and order_date < cast('{{ var('max_date') }}' as date){% endif %}"
) }}
with orders as (
    select *
    from {{ ref('stg_orders') }}
    where order_date >= cast('{{ var("min_date") }}' as date)
      and order_date < cast('{{ var("max_date") }}' as date)
),
lines as (
    select * from {{ ref('stg_order_items') }}
),
customer_versions as (
    select customer_key, customer_id, valid_from, valid_to from {{ ref('dim_customer') }}
),
products as (
    select product_key, product_id from {{ ref('dim_product') }}
)
select
    lines.order_item_id as sale_id,
    orders.order_id,
    orders.order_date,
    orders.created_at as ordered_at,
    cast(extract(year from orders.order_date) * 10000 + extract(month from orders.order_date) * 100
         + extract(day from orders.order_date) as integer) as date_key,
    -- the customer version valid when the order was placed (point in time), not the current one
    customer_versions.customer_key,
    products.product_key,
    lines.quantity,
    lines.unit_price,
    cast(lines.quantity * lines.unit_price - lines.discount_amount as decimal(12, 2)) as total_amount,
    lines.discount_amount,
    orders.order_status
from lines
inner join orders on orders.order_id = lines.order_id
left join customer_versions
    on customer_versions.customer_id = orders.customer_id
   and orders.created_at >= customer_versions.valid_from
   and orders.created_at < customer_versions.valid_to
left join products on products.product_id = lines.product_id
