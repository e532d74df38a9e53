"""What a web process loads before its first request, and then freezes (config.asgi, config.wsgi)."""

import gc


def load_and_freeze() -> None:
    """Everything a request will use, loaded now and frozen, and the database pool opening.

    The URLconf brings every view; the channel plugins are loaded by the registry on first use (their
    entry points, 230 ms, most of it the Twitter plugin's regular expressions), which made the first
    webhooks of each process wait that long, each request thread arriving meanwhile loading them again
    (bench/ingest.py). All of it lives as long as the process: frozen, the cyclic collector no longer
    walks it. A full collection of that heap (about one per 1,500 requests) took 70-500 ms on a busy
    machine, and for that long every request of the process waited (bench/claim.py's p99; Instagram's
    gc.freeze()).
    """
    import config.urls  # noqa: F401
    from omnidesk.plugins.registry import registry

    registry()
    _open_pool()
    gc.freeze()


def _open_pool() -> None:
    """Start filling the PostgreSQL connection pool to its minimum (settings: the whole pool) in the
    background: the first burst of requests then finds its connections open. It does not wait: a
    database that is down makes requests answer 503 (DatabaseUnavailableMiddleware), not the process
    fail to start."""
    from django.db import connection

    pool = getattr(connection, "pool", None)  # PostgreSQL with DATABASE_POOL_MAX_SIZE
    if pool is not None:
        pool.open(wait=False)
