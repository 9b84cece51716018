-- core.unit_returns for the periods being built ($periods) from the versions in
-- effect; the caller has written their staging.return_rows and
-- core.district_returns and deleted their core.unit_returns slices first. The
-- register decides unit name and type; the return supplies the figures.
-- (pipeline.warehouse.load.prepare_period derives the same rows for the
-- history checks of the next period: keep the two in step.)
insert into core.unit_returns
with in_effect as (
    select period, district_code, sha256, source_file
    from core.district_returns
    where list_contains($periods, period) and sha256 is not null
),
rows_in_effect as (
    select r.*, e.district_code, e.source_file
    from staging.return_rows r
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
