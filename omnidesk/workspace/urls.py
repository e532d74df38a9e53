from django.conf import settings
from django.urls import path

from . import views, views_auth, views_manage, views_queue, views_ticket

urlpatterns = [
    path("", views_queue.queue, name="home"),
    path("queue/rows/<int:ticket_id>/", views_queue.queue_row, name="queue-row"),
    path("tickets/<int:ticket_id>/", views_ticket.ticket_page, name="ticket"),
    path("tickets/<int:ticket_id>/measure/", views_ticket.measure, name="ticket-measure"),
    path("tickets/<int:ticket_id>/merge/", views_ticket.merge, name="ticket-merge"),
    path("attachments/<int:attachment_id>/", views_ticket.attachment, name="attachment"),
    path("manage/", views_manage.manage, name="manage"),
    path("accounts/login/", views_auth.LoginView.as_view(), name="workspace-login"),
    path("accounts/logout/", views_auth.LogoutView.as_view(), name="workspace-logout"),
]

if settings.DEBUG:
    urlpatterns.append(path("demo/callback/", views.demo_callback, name="demo-callback"))
