{#- Every complete segment-day with the figures the alerts compare (the net changes of the 28
    days before: how many, their mean and standard deviation; the day before's total) and
    whether it is out of the ordinary. segment_growth_alerts shows the days that are.
    Incremental like segment_growth_daily (the same lookback, 29 days of context). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['segment_id', 'day'],
    )
}}
{%- set k = var('alert_stddev_k') %}
{%- set min_days = var('alert_min_history_days') | int %}
{%- set drop_share = var('alert_drop_share') %}

{%- if is_incremental() %}
  {%- set scope = growth_incremental_scope() %}
{%- endif %}

with daily as (
    select *
    from {{ ref('segment_growth_daily') }}
    where is_complete
    {%- if is_incremental() %}
        and {{ growth_in_scope(scope, 'day', 29) }}
    {%- endif %}
),

history as (
    select
        daily.*,
        count(net_members_changed) over previous_28_days as history_days,
        avg(cast(net_members_changed as {{ growth_double() }})) over previous_28_days as mean_28d,
        stddev_samp(cast(net_members_changed as {{ growth_double() }})) over previous_28_days as stddev_28d,
        lag(total_members) over (
            partition by {{ account_column() }} segment_id order by day
        ) as previous_total,
        lag(day) over (partition by {{ account_column() }} segment_id order by day) as previous_day
    from daily
    window previous_28_days as (
        partition by {{ account_column() }} segment_id
        order by day
        range between {{ days_interval(28) }} preceding and {{ days_interval(1) }} preceding
    )
),

flagged as (
    select
        *,
        coalesce(
            history_days >= {{ min_days }}
            and stddev_28d > 0
            and abs(net_members_changed - mean_28d) > {{ k }} * stddev_28d,
            false
        ) as is_unusual,
        coalesce(
            previous_day = day - 1
            and previous_total > 0
            and net_members_changed < 0
            and -net_members_changed > {{ drop_share }} * previous_total,
            false
        ) as is_sharp_drop
    from history
)

select
    {{ account_column() }}
    segment_id,
    segment_name,
    day,
    total_members,
    net_members_changed,
    previous_total,
    history_days,
    mean_28d,
    stddev_28d,
    is_unusual,
    is_sharp_drop
from flagged
{%- if is_incremental() %}
where {{ growth_in_scope(scope) }}
{%- endif %}
