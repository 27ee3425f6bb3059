"""The URL map: each context contributes its own routes."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import views as accounts
from chat import views as chat
from customers import views as customers
from project.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # identity
    path("api/v1/auth/agent", accounts.agent_token),
    path("api/v1/auth/agent/token", accounts.revoke_current_token),
    path("api/v1/customers", customers.customers),
    path("api/v1/customers/<str:customer_id>", customers.customer_detail),
    # messages
    path("api/v1/messages", chat.messages),
    path("api/v1/messages/<str:message_id>", chat.message_detail),
    path("api/v1/messages/<str:message_id>/read", chat.message_read),
    path("api/v1/badge", chat.badge),
    path("api/v1/conversations", chat.conversations),
    path("api/v1/conversations/<str:customer_id>", chat.conversation_detail),
    path("api/v1/conversations/<str:customer_id>/messages", chat.conversation_messages),
    # push, inbound webhooks, pages
    path("", include("notifications.urls")),
    path("", include("inbound.urls")),
    path("", include("web.urls")),
]
