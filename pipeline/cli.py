"""`pipeline`: run the pipeline, query the warehouse, write district templates.

Maintainer-facing text is English; the workbooks and messages it produces for
districts are Vietnamese.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
from pathlib import Path

from pipeline import warm_start
from pipeline.config import load_settings


def _fail(message: str) -> int:
    print(f"pipeline: {message}", file=sys.stderr)
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    # What is imported from here on is made to last: no collector passes over it while it
    # is made (run_pipeline keeps the collector paused through Dagster's imports and
    # resumes it for the run itself).
    gc.disable()
    try:
        from pipeline.ingest.prestart import start_fork_server

        # A run forked from the warm process has the parsing code imported and forks its workers
        # itself (batch.fork_directly); a fresh one has the fork server import it on another core
        # while this process imports Dagster.
        if not warm_start.forked_run():
            start_fork_server()
        from pipeline.runner import RunError, run_pipeline

        try:
            outcome = run_pipeline(
                load_settings(), period=args.period, force=args.force, quiet=args.quiet, all_reports=args.all_reports
            )
        except RunError as exc:
            return _fail(str(exc))
    finally:
        gc.enable()
    print(outcome.render())
    return 0 if outcome.success else 1


def cmd_sql(args: argparse.Namespace) -> int:
    from pipeline.sql_shell import interactive, run_query

    settings = load_settings()
    if not settings.warehouse.exists():
        return _fail(f"no warehouse at {settings.warehouse}; run `pipeline run` first")
    if args.query:
        return run_query(settings.warehouse, " ".join(args.query))
    return interactive(settings.warehouse)


def cmd_template(args: argparse.Namespace) -> int:
    from pipeline.register import default_register
    from pipeline.templates import templates_for_period

    register, settings = default_register(), load_settings()
    try:
        paths = templates_for_period(
            register, args.period, Path(args.out), district_code=args.district,
            province_title=f"TỈNH ỦY {settings.province.upper()}",
        )  # fmt: skip
    except KeyError as exc:
        return _fail(f"unknown district {exc}; codes are in {settings.register}")
    for p in paths:
        print(p)
    return 0


def cmd_warm(args: argparse.Namespace) -> int:
    if args.action == "stop":
        pids = warm_start.stop()
        print(f"asked to stop: {', '.join(map(str, pids))}" if pids else "no warm process")
        return 0
    for line in warm_start.status():
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    s = load_settings()
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description=(
            "Consolidate the district returns on agency party cells into a DuckDB warehouse and reports.\n\n"
            f"Raw folder:  {s.raw_dir}  (PIPELINE_RAW_DIR)\n"
            f"Warehouse:   {s.warehouse}  (PIPELINE_WAREHOUSE; reports, feedback and archive live beside it)\n"
            f"Register:    {s.register}  (PIPELINE_REGISTER)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="materialise every asset for every period folder (or one) and print the province summary",
        description=(
            "Materialise all assets through the Dagster definitions the UI shows. With DAGSTER_HOME set, "
            "the run appears in the UI's history. Periods whose folder, register and code are as at the "
            "last successful run are not run again (--force runs them). Exit 0 when the pipeline ran "
            "(refused files are data), 1 when the run failed, 2 when it could not run. A run leaves a warm "
            "process behind (see `pipeline warm --help`); the next run forks from it and skips the seconds "
            "of start-up. PIPELINE_WARM_START=off runs every time in the calling process."
        ),
    )
    run.add_argument("--period", help="only this period (folder name YYYY-MM under the raw folder)")
    run.add_argument("--force", action="store_true", help="rebuild periods even when their inputs did not change")
    run.add_argument(
        "--all-reports",
        action="store_true",
        help="write reports and feedback for every changed period (by default the 3 newest per run)",
    )
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.set_defaults(func=cmd_run)

    sql = sub.add_parser(
        "sql",
        help="run a read-only SQL query on the warehouse (no query: interactive prompt)",
        description="Read-only: safe to use while a run is publishing a new warehouse.",
    )
    sql.add_argument("query", nargs="*", help="SQL text, e.g. \"select * from marts.province_summary\"")
    sql.set_defaults(func=cmd_sql)

    warm = sub.add_parser(
        "warm",
        help="show or stop the warm process that later `pipeline run`s fork from",
        description=(
            "A `pipeline run` that finds none starts a process that imports the pipeline (at idle priority "
            "while that run runs) and stays; the next run forks from it instead of importing again (about 3 s on 2 cores), "
            "and borrows the LibreOffice it keeps started for the report PDFs. A run that comes while it is "
            "still importing runs on its own. It serves one version of the code and "
            f"environment, and exits {warm_start.DEFAULT_IDLE_SECONDS / 60:.0f} minutes after its last run "
            f"({warm_start.IDLE_ENV}, seconds) or when a newer one starts. {warm_start.ENABLE_ENV}=off "
            "turns it off."
        ),
    )
    warm.add_argument(
        "action",
        choices=["status", "stop"],
        nargs="?",
        default="status",
        help="status (default): whether a warm process would serve a run from here; stop: end it",
    )
    warm.set_defaults(func=cmd_warm)

    template = sub.add_parser("template", help="write each district's pre-filled return for a period")
    template.add_argument("--period", required=True, help="reporting period YYYY-MM")
    template.add_argument("--district", help="district code (default: every district of the register)")
    template.add_argument("--out", required=True, help="output folder")
    template.set_defaults(func=cmd_template)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def console_main() -> None:
    """The `pipeline` command: ``main``, then a quick exit.

    `pipeline run` goes to the warm process when there is one (see
    pipeline/warm_start.py) and otherwise runs here, starting one for the
    next run as it begins. Once the output is written and the exit handlers have run (worker
    processes, logging, temporary folders), tearing down the interpreter's
    objects one by one takes about half a second after a run and changes
    nothing outside the process, so it is skipped.
    """
    argv = sys.argv[1:]
    environ = dict(os.environ)  # as it was before the run sets variables of its own
    is_run = argv[:1] == ["run"]
    code = warm_start.run_warm(argv) if is_run else None
    ran_here = code is None
    if ran_here:
        args = build_parser().parse_args(argv)  # `run --help` or a mistyped option ends here
        lock = warm_start.announce_in_process_run() if is_run else None
        if is_run:  # it imports while this run runs, taking only CPU the run leaves idle
            warm_start.start_warm_process(environ)
        code = args.func(args)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    if is_run and ran_here:
        if lock is not None:
            os.close(lock)
        warm_start.start_warm_process(environ)  # unless the one started above answers
    os._exit(code)


if __name__ == "__main__":
    console_main()
