-- Every district in effect reports exactly the register's units.
with reported as (
    select period, district_code, count(*) as units
    from core.unit_returns
    where list_contains($periods, period)
    group by period, district_code
),
compared as (
    select r.period, r.district_code, r.units, d.units_expected
    from reported r join core.districts d using (district_code)
)
select
    period,
    bool_and(units = units_expected) as passed,
    coalesce(string_agg(case when units <> units_expected then format('{}: {}/{}', district_code, units, units_expected) end, ', '), 'all districts match') as detail
from compared
group by period
order by period;
