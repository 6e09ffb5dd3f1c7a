-- Grain: one row per calendar day, 2020-01-01 .. 2030-12-31 (SCD Type 0).
-- Names are spelled out with CASE rather than engine functions so DuckDB and PostgreSQL agree.
{% set fy = var('fiscal_year_start_month') | int %}
with days as (
    select cast(d as date) as full_date
    from generate_series(cast('2020-01-01' as timestamp), cast('2030-12-31' as timestamp), interval '1 day') as t(d)
),
parts as (
    select
        full_date,
        cast(extract(year from full_date) as integer) as year,
        cast(extract(month from full_date) as integer) as month,
        cast(extract(day from full_date) as integer) as day_of_month,
        cast(extract(isodow from full_date) as integer) as day_of_week,
        cast(extract(week from full_date) as integer) as week_of_year
    from days
),
holidays as (
    select cast(holiday_date as date) as holiday_date from {{ ref('holidays') }}
)
select
    year * 10000 + month * 100 + day_of_month as date_key,
    full_date,
    year,
    (month - 1) / 3 + 1 as quarter,
    month,
    case month when 1 then 'January' when 2 then 'February' when 3 then 'March' when 4 then 'April'
        when 5 then 'May' when 6 then 'June' when 7 then 'July' when 8 then 'August'
        when 9 then 'September' when 10 then 'October' when 11 then 'November' else 'December' end as month_name,
    week_of_year,
    day_of_month,
    day_of_week,
    case day_of_week when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday'
        when 4 then 'Thursday' when 5 then 'Friday' when 6 then 'Saturday' else 'Sunday' end as day_name,
    day_of_week in (6, 7) as is_weekend,
    h.holiday_date is not null as is_holiday,
    -- The fiscal year is named after the calendar year in which it ends.
    case when {{ fy }} = 1 or month < {{ fy }} then year else year + 1 end as fiscal_year,
    ((month - {{ fy }} + 12) % 12) / 3 + 1 as fiscal_quarter
from parts
left join holidays as h on h.holiday_date = parts.full_date
