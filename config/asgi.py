"""ASGI entry point: HTTP through Django, websockets through Channels."""

import gc
import os

import django

from config.asgi_http import OneHopASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)
django_asgi_app = OneHopASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from omnidesk.security.headers import StaticFilesWithHeaders  # noqa: E402
from omnidesk.workspace.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The apps' committed assets (CSS, JS) from the one process `make run` starts; a deployment
        # may still put a web server in front for STATIC_ROOT.
        "http": StaticFilesWithHeaders(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far (Django, the apps, every view through the URLconf) lives as long as the
# process: frozen, the cyclic collector no longer walks it. A full collection of that heap (about one
# per 1,500 requests) took 70-500 ms on a busy machine, and for that long every request of the process
# waited (bench/claim.py's p99; Instagram's gc.freeze()).
import config.urls  # noqa: E402,F401

# The channel plugins too: loaded on first use (their entry points, 230 ms, most of it the Twitter
# plugin's regular expressions), they made the first webhooks of each process wait that long, each
# request thread arriving meanwhile loading them again (bench/ingest.py, docs/benchmarks.md).
from omnidesk.plugins.registry import registry  # noqa: E402

registry()
gc.freeze()
