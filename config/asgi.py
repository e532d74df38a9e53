"""ASGI entry point: HTTP through Django, websockets through Channels."""

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

from config.startup import load_and_freeze  # noqa: E402

load_and_freeze()
