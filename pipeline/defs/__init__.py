"""Dagster wiring: assets, checks, partitions, resources, sensor and schedule."""

import warnings

import dagster as dg

# backfill_policy is marked beta; we rely on single-run backfills deliberately (see partitions.py).
warnings.filterwarnings("ignore", category=dg.BetaWarning)
