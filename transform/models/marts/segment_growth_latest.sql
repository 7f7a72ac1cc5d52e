{#- One row per segment (and account): its last complete day and the changes up to it, as in
    segment_growth_daily (total_members minus its value 1, 7 or 30 days earlier; null where
    that day is missing). trend: the 7-day change against growth_trend_threshold.
    A view: it reads 31 days per segment of the (incremental) daily model when queried, so a
    build does not rewrite it. -#}
{{ config(materialized='view') }}
{%- set threshold = var('growth_trend_threshold') %}

with daily as (
    select * from {{ ref('segment_growth_daily') }}
),

last_day as (
    select {{ account_column() }} segment_id, max(day) as as_of
    from daily
    where is_complete
    group by {{ account_column() }} segment_id
),

latest as (
    select
        {{ account_column('d') }}
        d.segment_id,
        d.segment_name,
        d.day as as_of,
        d.total_members,
        d.total_members - d1.total_members as change_1d,
        d.total_members - d7.total_members as change_7d,
        d.total_members - d30.total_members as change_30d,
        {{ growth_fraction('d.total_members - d1.total_members', 'd1.total_members') }} as pct_change_1d,
        {{ growth_fraction('d.total_members - d7.total_members', 'd7.total_members') }} as pct_change_7d,
        {{ growth_fraction('d.total_members - d30.total_members', 'd30.total_members') }} as pct_change_30d
    from last_day as l
    inner join daily as d
        on d.segment_id = l.segment_id{{ same_account('d', 'l') }} and d.day = l.as_of
    left join daily as d1
        on d1.segment_id = d.segment_id{{ same_account('d1', 'd') }} and d1.day = d.day - 1
    left join daily as d7
        on d7.segment_id = d.segment_id{{ same_account('d7', 'd') }} and d7.day = d.day - 7
    left join daily as d30
        on d30.segment_id = d.segment_id{{ same_account('d30', 'd') }} and d30.day = d.day - 30
)

select
    *,
    case
        when pct_change_7d > {{ threshold }} then 'growing'
        when pct_change_7d < -{{ threshold }} then 'shrinking'
        when pct_change_7d is not null then 'flat'
        when change_7d > 0 then 'growing'
        when change_7d < 0 then 'shrinking'
        else 'flat'
    end as trend
from latest
