{#- One row per segment (and account) and complete day whose net change is out of the ordinary,
    with the reason in words:
    * unusual change: more than alert_stddev_k standard deviations from the mean net change of
      the 28 days before (given at least alert_min_history_days of them, and some variation);
    * sharp drop: a loss of more than alert_drop_share of the day before's total.
    A view over int_segment_growth_checks, which computes the figures incrementally: so a daily
    run recomputes only the new and revised days, and an alert that a revision undoes goes. -#}
{{ config(materialized='view') }}

select
    {{ account_column() }}
    segment_id,
    segment_name,
    day,
    total_members,
    net_members_changed,
    round(cast(mean_28d as numeric), 1) as mean_net_28d,
    round(cast(stddev_28d as numeric), 1) as stddev_net_28d,
    case when is_sharp_drop then 'sharp_drop' else 'unusual_change' end as alert_kind,
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
from {{ ref('int_segment_growth_checks') }}
where is_unusual or is_sharp_drop
