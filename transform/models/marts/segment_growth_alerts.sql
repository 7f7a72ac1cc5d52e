{#- One row per segment (and account) and complete day whose net change is out of the ordinary,
    with the reason in words:
    * unusual change: more than alert_stddev_k standard deviations from the mean net change of
      the 28 days before (given at least alert_min_history_days of them, and some variation);
    * sharp drop: a loss of more than alert_drop_share of the day before's total. -#}
{%- set k = var('alert_stddev_k') %}
{%- set min_days = var('alert_min_history_days') | int %}
{%- set drop_share = var('alert_drop_share') %}

with daily as (
    select * from {{ ref('segment_growth_daily') }} where is_complete
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
        history_days >= {{ min_days }}
            and stddev_28d > 0
            and abs(net_members_changed - mean_28d) > {{ k }} * stddev_28d as is_unusual,
        previous_day = day - 1
            and previous_total > 0
            and net_members_changed < 0
            and -net_members_changed > {{ drop_share }} * previous_total as is_sharp_drop
    from history
)

select
    {{ account_column() }}
    segment_id,
    segment_name,
    day,
    total_members,
    net_members_changed,
    round(cast(mean_28d as numeric), 1) as mean_net_28d,
    round(cast(stddev_28d as numeric), 1) as stddev_net_28d,
    case
        when is_sharp_drop then 'sharp_drop'
        else 'unusual_change'
    end as alert_kind,
    concat_ws(
        '; ',
        case when is_sharp_drop then
            'lost ' || cast(-net_members_changed as varchar) || ' members in a day, '
            || cast(round(cast(-100.0 * net_members_changed / previous_total as numeric), 1) as varchar)
            || '% of ' || cast(previous_total as varchar)
        end,
        case when is_unusual then
            'net change ' || cast(net_members_changed as varchar) || ' is '
            || cast(round(cast(abs(net_members_changed - mean_28d) / stddev_28d as numeric), 1) as varchar)
            || ' standard deviations from the 28-day mean of '
            || cast(round(cast(mean_28d as numeric), 1) as varchar)
        end
    ) as reason
from flagged
where is_unusual or is_sharp_drop
