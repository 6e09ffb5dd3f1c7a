-- Grain: one row per customer version (SCD Type 2); exactly one current row per customer.
-- valid_from .. valid_to is half-open; the first version reaches back to the customer's
-- creation, so facts older than the first snapshot still find the version valid then.
with versions as (
    select
        *,
        row_number() over (partition by customer_id order by dbt_valid_from) as version_number
    from {{ ref('customers_snapshot') }}
)
select
    dbt_scd_id as customer_key,
    customer_id,
    customer_name,
    email,
    segment,
    country,
    registration_date,
    case when version_number = 1 and created_at < dbt_valid_from then created_at else dbt_valid_from end as valid_from,
    coalesce(dbt_valid_to, cast('9999-12-31' as timestamp)) as valid_to,
    dbt_valid_to is null as is_current,
    version_number
from versions
