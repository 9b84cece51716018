from pipeline.definitions import defs


def test_definitions_load_with_groups_and_descriptions():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_returns", "parsed_returns", "audit/files", "marts/province_summary", "province_report"} <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name in {"ingest", "warehouse", "marts", "reports"}, key
    assert defs.resolve_job_def("refresh_periods")


def test_only_ingest_is_partitioned_by_period():
    """Per-period partitions where the data is per period; the warehouse, marts and reports are
    whole tables and files, one asset each, so a run over years records few events."""
    import dagster as dg

    graph = defs.resolve_asset_graph()
    partitioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    assert partitioned == {"raw_returns", "parsed_returns"}
    assert graph.get(dg.AssetKey(["marts", "province_summary"])).group_name == "marts"
    assert graph.get(dg.AssetKey(["core", "unit_returns"])).group_name == "warehouse"
