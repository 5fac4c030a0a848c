from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Tracker"
admin.site.site_title = "Tracker staff"
admin.site.index_title = "Recommendations, evidence and progress"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
]
