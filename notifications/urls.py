"""URL routes of this app (included from project.urls at the root)."""

from django.urls import path

from notifications import views

urlpatterns = [
    path("api/v1/push/public-key", views.public_key),
    path("api/v1/push-subscriptions", views.subscriptions),
    path("api/v1/push-subscriptions/<str:subscription_id>", views.subscription_detail),
    path("sw.js", views.service_worker),
]
