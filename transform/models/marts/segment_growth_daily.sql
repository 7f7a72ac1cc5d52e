{#- One row per segment (and account) and day, from Klaviyo's daily series.

    Incremental: a run recomputes the days from `growth_lookback_days` before the newest
    modelled day on (Klaviyo revises recent buckets and the tap re-reads them), plus every day
    of a segment not modelled yet, reading 30 more days for the 7- and 28-day columns; so a
    daily run touches only new and revised days. A full refresh gives the same rows (tested).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['segment_id', 'day'],
    )
}}

{%- if is_incremental() %}
  {%- set scope = growth_incremental_scope() %}
{%- endif %}

{#- A full build reads every day once (materialized); an incremental one reads a few days, where
    DuckDB is faster with the filter pushed into the scan (not materialized). #}
with days as {{ '' if is_incremental() else 'materialized' }} (
    select
        {{ account_column() }}
        segment_id,
        segment_name,
        bucket_day as day,
        total_members,
        members_added,
        members_removed,
        net_members_changed,
        is_complete
    from {{ ref('stg_segment_series') }}
    where series_interval = 'daily'
    {%- if is_incremental() %}
        and {{ growth_in_scope(scope, 'bucket_day', 30, utc_column='bucket_start_utc') }}
    {%- endif %}
),

measured as (
    select
        d.*,
        d.total_members - d7.total_members as change_7d,
        d.total_members - d28.total_members as change_28d,
        {{ growth_fraction('d.total_members - d7.total_members', 'd7.total_members') }} as pct_change_7d,
        {{ growth_fraction('d.total_members - d28.total_members', 'd28.total_members') }} as pct_change_28d,
        cast(sum(d.members_added) over seven_days as bigint) as added_7d,
        cast(sum(d.members_removed) over seven_days as bigint) as removed_7d,
        {{ growth_fraction('d.members_removed', 'd1.total_members') }} as churn_rate
    from days as d
    left join days as d1
        on d1.segment_id = d.segment_id{{ same_account('d1', 'd') }} and d1.day = d.day - 1
    left join days as d7
        on d7.segment_id = d.segment_id{{ same_account('d7', 'd') }} and d7.day = d.day - 7
    left join days as d28
        on d28.segment_id = d.segment_id{{ same_account('d28', 'd') }} and d28.day = d.day - 28
    window seven_days as (
        partition by {{ account_column('d') }} d.segment_id
        order by d.day
        range between {{ days_interval(6) }} preceding and current row
    )
)

select
    {{ account_column() }}
    segment_id,
    segment_name,
    day,
    total_members,
    members_added,
    members_removed,
    net_members_changed,
    is_complete,
    change_7d,
    change_28d,
    pct_change_7d,
    pct_change_28d,
    added_7d,
    removed_7d,
    churn_rate
from measured
{%- if is_incremental() %}
where {{ growth_in_scope(scope) }}
{%- endif %}
