"""The web tier: N uvicorn processes, each listening on a socket of its own (SO_REUSEPORT).

`uvicorn --workers N` has its processes accept from one shared socket, so whichever process is
awake first takes a burst of new connections: 50 keep-alive clients landed 37/14, 44/7 on two
processes (bench/claim.py), and the busier process's requests waited three times as long. With a
socket per process the kernel spreads new connections over the processes by their address hash,
before any process is involved (25 ± 4 of 50 on two). uvicorn's own supervisor still starts,
health-checks, restarts and stops the processes.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

APPS = {"asgi": ("config.asgi:application", "asgi3"), "wsgi": ("config.wsgi:application", "wsgi")}


def reuse_port_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket that shares `port` with the other processes' (the kernel balances between them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class OwnSocket:
    """What uvicorn's supervisor hands each web process as its socket: unpickled in that process (uvicorn
    spawns them), it becomes a socket of the process's own. The supervisor itself holds none, so a process
    that dies takes its socket, and the connections waiting on it, out of the kernel's choice at once."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        self.host, self.port, self.backlog = host, port, backlog

    def __reduce__(self) -> tuple[Any, tuple[str, int, int]]:
        return reuse_port_socket, (self.host, self.port, self.backlog)


class Command(BaseCommand):
    help = (
        "Serve the web tier (pages, API, webhooks, websockets) from N processes, each with its own listening "
        "socket, so that the kernel spreads connections evenly over them."
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
        from uvicorn.supervisors import Multiprocess

        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        host, port, backlog = options["host"], options["port"], options["backlog"]
        try:  # a port held by a server that does not share it: say so here, not in a loop of dying processes
            reuse_port_socket(host, port, backlog).close()
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        app, interface = APPS[options["interface"]]
        config = uvicorn.Config(
            app, interface=interface, host=host, port=port, workers=options["workers"], backlog=backlog,
            log_level=options["log_level"], access_log=not options["no_access_log"], lifespan="off",
            proxy_headers=True, forwarded_allow_ips=options["forwarded_allow_ips"],
            ws_per_message_deflate=options["ws_per_message_deflate"] == "true",
        )
        self.stdout.write(f"web: {options['workers']} process(es) on http://{host}:{port}/ ({options['interface']})")
        sys.stdout.flush()
        Multiprocess(config, sockets=[OwnSocket(host, port, backlog)]).run()  # type: ignore[list-item]
