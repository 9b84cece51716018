-- A query, not a statement: warehouse/build.py refresh_marts makes the table from it, or
-- replaces its rows of periods from $since on (NULL: all periods).
-- Grain: one row per period and unit whose agency cell was set up under Guidance 28.
select
    r.period,
    r.district_code,
    d.district_name,
    r.unit_code,
    r.unit_name,
    r.unit_type,
    r.established_on,
    r.cell_members,
    r.source_file
from core.unit_returns r
join core.districts d using (district_code)
where r.eligible and r.has_cell and r.basis = 'HD28' and r.period >= coalesce($since, '')
order by r.period, r.district_code, r.unit_code;
