-- Layers of the warehouse. Tables are created once; loads replace a period's
-- slice (delete then insert) so every load is idempotent.
create schema if not exists staging;
create schema if not exists core;
create schema if not exists marts;
create schema if not exists audit;

-- Percent rounded half-up to one decimal. Exact for ties: 1000*a/b = k + 0.5 is
-- representable, and non-ties with b < 1e9 are farther from k + 0.5 than an ulp.
create or replace macro pct(a, b) as
    case when b is null or b = 0 or a is null then null
         else floor(1000.0 * a / b + 0.5) / 10.0 end;

create table if not exists core.districts (
    district_code varchar primary key,
    district_name varchar not null,
    short_name varchar,
    district_kind varchar,
    committee_title varchar,
    units_expected integer
);

create table if not exists core.units (
    unit_code varchar primary key,
    unit_name varchar not null,
    unit_type varchar not null,
    gso_unit_type varchar,
    district_code varchar not null,
    note varchar
);

-- One row per file version ever seen (public, see docs/warehouse.md).
create table if not exists audit.files (
    period varchar not null,
    file_name varchar not null,
    path varchar not null,
    sha256 varchar not null,
    size_bytes bigint,
    modified_at timestamptz,
    first_seen_at timestamptz,
    district_code varchar,
    status varchar not null,
    archived_path varchar,
    sheet varchar,
    errors integer,
    warnings integer,
    primary key (period, path, sha256)
);

-- One row per problem found (public).
create table if not exists audit.issues (
    period varchar not null,
    file_name varchar,
    district_code varchar,
    sheet varchar,
    cell varchar,
    severity varchar not null,
    code varchar not null,
    message varchar not null,
    action varchar,
    path varchar,
    sha256 varchar
);

-- What each period was last built from; an unchanged period is skipped.
create table if not exists audit.period_builds (
    period varchar primary key,
    fingerprint varchar not null,
    built_at timestamptz not null,
    files integer,
    run_id varchar
);

-- Every parsed unit row of every readable version, accepted or not.
create table if not exists staging.return_rows (
    period varchar not null,
    sha256 varchar not null,
    sheet varchar,
    excel_row integer not null,
    unit_code varchar,
    unit_name_written varchar,
    unit_type_written varchar,
    total_members integer,
    eligible boolean,
    has_cell boolean,
    established_on date,
    basis varchar,
    cell_members integer,
    note varchar
);

-- Per period and district: the status and the version in effect.
create table if not exists core.district_returns (
    period varchar not null,
    district_code varchar not null,
    status varchar not null,
    sha256 varchar,
    source_file varchar,
    source_path varchar,
    primary key (period, district_code)
);

-- One row per period and unit from the returns in effect (public).
create table if not exists core.unit_returns (
    period varchar not null,
    district_code varchar not null,
    unit_code varchar not null,
    unit_name varchar not null,
    unit_type varchar not null,
    total_members integer,
    eligible boolean,
    has_cell boolean,
    established_on date,
    basis varchar,
    cell_members integer,
    note varchar,
    source_file varchar,
    source_sheet varchar,
    source_row integer,
    source_sha256 varchar,
    primary key (period, unit_code)
);
