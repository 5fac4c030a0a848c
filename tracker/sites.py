"""The staff's admin site: a start page that says what needs attention, and Tracker's own
sections before the administrators' (users, tokens, schedules, lockouts)."""

from django.contrib import admin

from .workspace import needs_attention

# Tracker's own apps, shown first, in this order: the work, then its audit trail.
OWN_APPS = ["tracker", "auditlog"]


class TrackerAdminSite(admin.AdminSite):
    index_template = "admin/tracker/index.html"

    def get_app_list(self, request, app_label=None):
        """Tracker's sections first, then the administrators' (each marked
        `is_administration`); an app's own index page lists that app alone, as usual."""
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        rank = {label: i for i, label in enumerate(OWN_APPS)}
        for app in apps:
            app["is_administration"] = app["app_label"] not in rank
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))

    def index(self, request, extra_context=None):
        apps = self.get_app_list(request)
        context = {
            "app_list": [app for app in apps if not app["is_administration"]],
            "administration": [app for app in apps if app["is_administration"]],
            "attention": needs_attention(request.user),
            **(extra_context or {}),
        }
        return super().index(request, context)
