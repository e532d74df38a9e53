"""One process for a laptop: web + websockets (uvicorn), a dramatiq worker, the scheduler and the pollers."""

from __future__ import annotations

import logging
import threading
import time
import urllib.request

import dramatiq
import uvicorn
from django.core.management.base import BaseCommand
from django.utils.module_loading import autodiscover_modules
from dramatiq.brokers.stub import StubBroker

from omnidesk.inbox import scheduler
from omnidesk.inbox.polling import PollerPool

log = logging.getLogger("omnidesk.serve")


class Command(BaseCommand):
    help = (
        "Serve web and websockets on one port, with the background worker (when no DRAMATIQ_BROKER_URL is set), "
        "the periodic sweeps and the pollers in the same process group."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--worker-threads", type=int, default=2)
        parser.add_argument("--no-pollers", action="store_true", help="do not run pollers in this process")
        parser.add_argument("--no-scheduler", action="store_true", help="do not run the periodic sweeps here")
        parser.add_argument("--demo-traffic", action="store_true", help="push the demo accounts' sample traffic")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        autodiscover_modules("tasks")
        stop = threading.Event()
        worker = None
        broker = dramatiq.get_broker()
        if isinstance(broker, StubBroker):
            worker = dramatiq.Worker(broker, worker_threads=options["worker_threads"], worker_timeout=200)
            worker.start()
            self.stdout.write(f"embedded worker: {options['worker_threads']} threads")
        else:
            self.stdout.write("DRAMATIQ_BROKER_URL is set: run workers with `python manage.py rundramatiq`")
        background = []
        if not options["no_scheduler"]:
            background.append(threading.Thread(target=scheduler.run_forever, args=(stop,), name="scheduler", daemon=True))
        pool = PollerPool()
        if not options["no_pollers"]:
            background.append(threading.Thread(target=pool.run, name="pollers", daemon=True))
        base_url = f"http://{options['host']}:{options['port']}"
        if options["demo_traffic"]:
            background.append(threading.Thread(target=_demo, args=(base_url,), name="demo-traffic", daemon=True))
        for thread in background:
            thread.start()
        self.stdout.write(self.style.SUCCESS(f"omnidesk on {base_url}/  (API {base_url}/api/v1/, admin {base_url}/admin/)"))
        try:
            uvicorn.run("config.asgi:application", host=options["host"], port=options["port"], log_level="info", lifespan="off")
        finally:
            stop.set()
            pool.stop.set()
            if worker is not None:
                worker.stop(timeout=5000)


def _demo(base_url: str) -> None:
    from omnidesk.workspace.demo import demo_traffic

    for _ in range(100):  # wait for the server to listen
        try:
            urllib.request.urlopen(f"{base_url}/api/v1/schema/", timeout=1).close()
            break
        except Exception:  # noqa: BLE001
            time.sleep(0.2)
    try:
        sent = demo_traffic(base_url=base_url)
        log.info("demo traffic: %d event(s) pushed through the channel plugins", sent)
    except Exception:  # noqa: BLE001
        log.exception("demo traffic failed")
