-- Province totals equal the sum over districts, per period.
with province as (
    select period, units, units_with_cell, cell_members, total_members
    from marts.province_summary
    where unit_type = 'total' and list_contains($periods, period)
),
districts as (
    select period,
        coalesce(sum(units), 0) as units,
        coalesce(sum(units_with_cell), 0) as units_with_cell,
        coalesce(sum(cell_members), 0) as cell_members,
        coalesce(sum(total_members), 0) as total_members
    from marts.district_summary
    where list_contains($periods, period)
    group by period
)
select
    p.period,
    p.units = d.units and p.units_with_cell = d.units_with_cell
        and p.cell_members = d.cell_members and p.total_members = d.total_members as passed,
    format('province {}/{}/{} vs districts {}/{}/{}', p.units, p.units_with_cell, p.cell_members,
           d.units, d.units_with_cell, d.cell_members) as detail
from province p join districts d using (period)
order by p.period;
