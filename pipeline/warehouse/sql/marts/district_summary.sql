-- A query, not a statement: warehouse/build.py refresh_marts makes the table from it, or
-- replaces its rows of periods from $since on (NULL: all periods).
-- Grain: one row per period and expected district, with or without a return in effect.
with periods as (
    select distinct period from core.district_returns where period >= coalesce($since, '')
),
grid as (
    select p.period, d.district_code, d.district_name
    from periods p cross join core.districts d
),
figures as (
    select
        period,
        district_code,
        count(*) as units,
        count(*) filter (where eligible and has_cell) as units_with_cell,
        coalesce(sum(cell_members) filter (where eligible and has_cell), 0)::bigint as cell_members,
        coalesce(sum(total_members), 0)::bigint as total_members,
        count(*) filter (where eligible and has_cell and basis = 'HD28') as cells_hd28
    from core.unit_returns
    where period >= coalesce($since, '')
    group by period, district_code
),
final as (
    select
        g.period,
        g.district_code,
        g.district_name,
        coalesce(s.status, 'missing') as status,
        f.units,
        f.units_with_cell,
        pct(f.units_with_cell, f.units) as coverage_pct,
        f.cell_members,
        f.total_members,
        pct(f.cell_members, f.total_members) as member_share_pct,
        f.cells_hd28,
        case when s.sha256 is not null then s.source_file end as source_file
    from grid g
    left join core.district_returns s on s.period = g.period and s.district_code = g.district_code
    left join figures f on f.period = g.period and f.district_code = g.district_code
)
select * from final where period >= coalesce($since, '') order by period, district_code;
