"""Routes of the pages (included from project.urls at the root)."""

from django.urls import path

from web import unsubscribe, verify, views, widget

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.chat, name="chat"),
    path("chat/start/", views.chat_start, name="chat_start"),
    path("chat/switch/", views.chat_switch, name="chat_switch"),
    path("chat/leave/", views.chat_leave, name="chat_leave"),
    path("agent/", views.agent, name="agent"),
    path("agent/reports/", views.reports_page, name="reports"),
    path("email/unsubscribe/<str:token>/", unsubscribe.email_unsubscribe, name="email_unsubscribe"),
    path("email/verify/<str:token>/", verify.email_verify, name="email_verify"),
    path("widget.js", widget.widget_js, name="widget_js"),
    path("widget/frame/", widget.widget_frame, name="widget_frame"),
    path("widget/open/", widget.widget_open, name="widget_open"),
    path("manifest.webmanifest", views.manifest, name="manifest"),
    path("sw.js", views.service_worker, name="service_worker"),
]
