from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("", include("apps.core.urls")),
    path("", include("apps.tokens.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.signin.urls")),
    path("", include("apps.mfa.urls")),
    path("", include("apps.federation.urls")),
    # One password form, one set of checks (issue 12): the admin signs in on the hosted page.
    path("admin/login/", RedirectView.as_view(pattern_name="signin:login", query_string=True)),
    path("console/", include("apps.console.urls")),
    path("api/v1/", include("apps.console.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("admin/", admin.site.urls),
]

handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.permission_denied"
handler404 = "apps.core.views.page_not_found"
handler500 = "apps.core.views.server_error"
