from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TrackerConfig(AppConfig):
    name = "tracker"
    verbose_name = "Tracker"

    def ready(self):
        # The app's wiring: whatever reacts to the models is connected here, so the models
        # import none of it (see the README's architecture notes).
        from . import (
            models,
            tasks,  # noqa: F401 (registers every task: flows queue some by name)
            webhooks,
        )
        from .audit import register_audited_models
        from .caching import watch_tracked_models
        from .ledger import connect_ledger

        register_audited_models()
        watch_tracked_models()
        connect_ledger(self)
        models.status_changed.connect(
            webhooks.announce_recorded_status, dispatch_uid="announce-status-change"
        )


class TrackerAdminConfig(admin_apps.SimpleAdminConfig):
    """The admin with Tracker's site (tracker.sites) as `admin.site`; settings name it in
    place of django.contrib.admin.

    Its modules (every app's admin.py) load with the URLs (config/urls.py), not at start-up:
    a worker or a command such as check_sources never serves the admin, and loading it
    would be over half of its start-up.
    """

    default = False  # "tracker" alone still means TrackerConfig
    default_site = "tracker.sites.TrackerAdminSite"
