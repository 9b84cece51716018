-- Every expected district has a return in effect.
select
    period,
    is_complete as passed,
    format('{}/{} districts reported', districts_reported, districts_expected) as detail
from marts.province_summary
where unit_type = 'total' and list_contains($periods, period)
order by period;
