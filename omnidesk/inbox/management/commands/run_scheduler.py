import signal
import threading

from django.core.management.base import BaseCommand

from omnidesk.inbox import scheduler


class Command(BaseCommand):
    help = "Enqueue the periodic sweeps (pending inbound events, due outbox rows). Run exactly one in production."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        plan = [f"{j.name} " + (f"every {j.every_s:g}s" if j.every_s else "at start-up") for j in scheduler.jobs()]
        self.stdout.write("scheduler running: " + ", ".join(plan))
        scheduler.run_forever(stop)
