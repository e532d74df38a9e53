import signal
import threading

from django.core.management.base import BaseCommand

from omnidesk.inbox.polling import PollerPool


class Command(BaseCommand):
    help = "Run one long-lived poller per enabled pull-channel account (its own process in production)."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        pool = PollerPool()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: pool.stop.set())
        self.stdout.write("pollers running; Ctrl-C to stop")
        thread = threading.Thread(target=pool.run, daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(1)
