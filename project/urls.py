"""The URL map: the admin, the login pages, the API and the pages."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from accounts.login import AdminLoginForm, LoginForm, refusals_as_429
from api.errors import unknown_endpoint

# Every sign-in (these two pages and POST /api/v1/auth/agent) counts in one
# throttle, accounts.throttle: the admin's page checks passwords with its form.
admin.site.login_form = AdminLoginForm

urlpatterns = [
    # Matched before the admin's own login/ route: the same view (and URL, so
    # reverse("admin:login") still leads here), answering 429 when refused.
    path("admin/login/", refusals_as_429(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/login/", refusals_as_429(auth_views.LoginView.as_view(authentication_form=LoginForm)), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("api.metrics")),  # /metrics, behind PARLEY_METRICS_KEY (docs/metrics.md)
    path("", include("api.urls")),
    path("", include("web.urls")),
    # Anything else under the API's prefixes answers in the API's error shape.
    re_path(r"^(?:api|webhooks)/(?P<rest>.*)$", unknown_endpoint),
]
