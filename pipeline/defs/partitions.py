import dagster as dg

# One partition per period folder (YYYY-MM) under the raw folder.
period_partitions = dg.DynamicPartitionsDefinition(name="period")
# A backfill over many periods runs as one run: no per-period start-up cost.
single_run = dg.BackfillPolicy.single_run()
