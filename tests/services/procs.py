"""Real processes for service tests: dramatiq workers, an ASGI server, a real broker client.

The code lives in omnidesk/devtools/procs.py (the benchmarks use it too); these names stay here
for the tests that import them.
"""

from omnidesk.devtools.procs import (  # noqa: F401
    ROOT,
    Proc,
    child_env as base_env,
    free_port,
    nudge,
    port_open,
    real_broker,
    start_asgi,
    start_scheduler,
    start_worker,
    steady_port,
    subprocess_database_url,
    sweep,
    wait_until,
)
