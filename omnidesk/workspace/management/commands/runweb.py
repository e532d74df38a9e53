"""The web tier: N uvicorn processes sharing one listening socket, each new connection accepted by
the process that holds the fewest (omnidesk/workspace/accept.py).

`uvicorn --workers N` has its processes accept from one shared socket too, but whichever process is
awake first takes a burst of new connections: 50 keep-alive clients landed 37/14, 44/7 on two
processes (bench/claim.py), and the busier process's requests waited three times as long. A socket
per process (SO_REUSEPORT, runweb until 2026-11) let the kernel spread them by their address hash,
25 ± 4 of 50 on two, which still made the busier process's p99 ~20 % worse. uvicorn's own supervisor
still starts, health-checks, restarts and stops the processes.
"""

from __future__ import annotations

import os
import sys

from django.core.management.base import BaseCommand, CommandError
from uvicorn.supervisors import Multiprocess

from omnidesk.workspace.accept import Listener

#: printed once the first processes have started (devtools.procs waits for it), with how many serve
SERVING_LINE = "web: serving with"
#: how long a process may take to load the project and serve
STARTUP_TIMEOUT = 120.0
APPS = {"asgi": ("config.asgi:application", "asgi3"), "wsgi": ("config.wsgi:application", "wsgi")}


class Command(BaseCommand):
    help = (
        "Serve the web tier (pages, API, webhooks, websockets) from N processes sharing one listening socket, "
        "each new connection going to the process that holds the fewest."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")),
                            help="processes (default: WEB_CONCURRENCY, else 1)")
        parser.add_argument("--interface", choices=sorted(APPS), default="asgi",
                            help="asgi: config.asgi (everything); wsgi: config.wsgi in a thread pool (webhooks only)")
        parser.add_argument("--backlog", type=int, default=2048, help="each process's accept queue")
        parser.add_argument("--forwarded-allow-ips", default=None,
                            help="proxies whose X-Forwarded-For/-Proto are trusted (default: FORWARDED_ALLOW_IPS, "
                                 "else 127.0.0.1; docs/security.md)")
        parser.add_argument("--ws-per-message-deflate", choices=("true", "false"), default="true",
                            help="compress websocket messages (CPU for bandwidth)")
        parser.add_argument("--log-level", default="info")
        parser.add_argument("--no-access-log", action="store_true")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        import uvicorn

        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        host, port, backlog = options["host"], options["port"], options["backlog"]
        try:  # a port already taken: say so here, not in a loop of dying processes
            listener = Listener(host, port, backlog)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        app, interface = APPS[options["interface"]]
        config = uvicorn.Config(
            app, interface=interface, host=host, port=port, workers=options["workers"], backlog=backlog,
            log_level=options["log_level"], access_log=not options["no_access_log"], lifespan="off",
            loop="omnidesk.workspace.accept:new_event_loop",
            proxy_headers=True, forwarded_allow_ips=options["forwarded_allow_ips"],
            ws_per_message_deflate=options["ws_per_message_deflate"] == "true",
        )
        self.stdout.write(f"web: {options['workers']} process(es) on http://{host}:{port}/ ({options['interface']})")
        sys.stdout.flush()
        try:
            Supervisor(config, sockets=[listener]).run()  # type: ignore[list-item]
        finally:
            listener.close()


class Supervisor(Multiprocess):
    """uvicorn's supervisor, saying when its first processes all serve: the shared socket accepts (and
    queues) connections from the moment it is bound, before any process serves, so a port that answers
    is no sign of it."""

    def init_processes(self) -> None:
        super().init_processes()
        ready = sum(process.wait_until_ready(STARTUP_TIMEOUT, self.should_exit) for process in self.processes)
        sys.stdout.write(f"{SERVING_LINE} {ready} of {len(self.processes)} process(es)\n")
        sys.stdout.flush()
