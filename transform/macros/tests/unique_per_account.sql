{% test unique_per_account(model, columns) %}
{#- The columns are a key: no two rows share them (with the account, where the tables have one). -#}
select {{ account_column() }} {{ columns | join(', ') }}, count(*) as rows_with_key
from {{ model }}
group by {{ account_column() }} {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
