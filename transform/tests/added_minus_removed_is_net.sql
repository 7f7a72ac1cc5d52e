{#- members_added - members_removed = net_members_changed on every row of every growth model. -#}
{% for model in ['segment_growth_daily', 'segment_growth_weekly', 'segment_growth_monthly'] %}
select '{{ model }}' as model, segment_id, members_added, members_removed, net_members_changed
from {{ ref(model) }}
where members_added - members_removed <> net_members_changed
{% if not loop.last %}union all{% endif %}
{% endfor %}
