"""URL routes of this app (included from project.urls)."""

from django.urls import URLPattern, path

from inbound import views

urlpatterns: list[URLPattern] = [
    path("webhooks/v1/inbound/<str:source>", views.receive, name="inbound-webhook"),
]
