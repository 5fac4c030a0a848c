from django.contrib import admin
from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from tracker.health import healthz


def favicon(request):
    """Browsers ask for /favicon.ico on pages that link no icon (the admin's, for one)."""
    return HttpResponseRedirect(static("tracker/favicon.ico"))


# Every app's admin module, loaded with the URLs (see tracker.apps.TrackerAdminConfig).
admin.autodiscover()

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
    path("favicon.ico", favicon, name="favicon"),
    # Pages the demo watches, served in demo mode only (tracker/demo/sources.py).
    path("demo-sources/", include("tracker.demo.sources")),
    # The visitor's language choice (set_language), kept in a cookie: no language prefixes.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include(("tracker.urls", "public"))),
]
