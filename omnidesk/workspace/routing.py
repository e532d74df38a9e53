from django.urls import path, re_path

from .consumers import NoSuchSocket, QueueConsumer, TicketConsumer

websocket_urlpatterns = [
    path("ws/queue/", QueueConsumer.as_asgi()),
    path("ws/tickets/<int:ticket_id>/", TicketConsumer.as_asgi()),
    re_path(r"", NoSuchSocket.as_asgi()),  # last: every other path
]
