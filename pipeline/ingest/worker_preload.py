"""What the parse workers' fork server imports before it forks any worker (``prestart.WORKER_PRELOAD``).

Imported with the cyclic collector paused, since everything it makes is made
to last, then frozen: a worker's collections never walk the code and data
that every worker shares, however many files it parses.
"""

import gc

gc.disable()
try:
    import pipeline.ingest.batch  # noqa: F401
    import pipeline.warehouse.load  # noqa: F401
finally:
    gc.freeze()
    gc.enable()
