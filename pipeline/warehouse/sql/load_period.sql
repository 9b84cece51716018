-- core.unit_returns for one period ($period) from the versions in effect; the
-- caller has deleted the period's slice first and registered the period's
-- staging rows (period_rows) and district decisions (period_districts), which
-- it writes to staging.return_rows / core.district_returns later. The register
-- decides unit name and type; the return supplies the figures.
insert into core.unit_returns
with in_effect as (
    select period, district_code, sha256, source_file
    from period_districts
    where period = $period and sha256 is not null
),
rows_in_effect as (
    select r.*, e.district_code, e.source_file
    from period_rows r
    join in_effect e on r.period = e.period and r.sha256 = e.sha256
),
final as (
    select
        r.period,
        u.district_code,
        u.unit_code,
        u.unit_name,
        u.unit_type,
        r.total_members,
        r.eligible,
        r.has_cell,
        r.established_on,
        r.basis,
        r.cell_members,
        r.note,
        r.source_file,
        r.sheet as source_sheet,
        r.excel_row as source_row,
        r.sha256 as source_sha256
    from rows_in_effect r
    join core.units u on u.unit_code = r.unit_code
)
select * from final;
