from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from tracker.health import healthz

admin.site.site_header = "Tracker"
admin.site.site_title = "Tracker staff"
admin.site.index_title = "Recommendations, evidence and progress"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(("tracker.api.urls", "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI with its start-up script served as a file (no inline script: see
    # tracker/content_policy.py).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", template_name="tracker/api_docs.html"
        ),
        name="api-docs",
    ),
    path("healthz", healthz, name="healthz"),
    # The visitor's language choice (set_language), kept in a cookie: no language prefixes.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include(("tracker.urls", "public"))),
]
