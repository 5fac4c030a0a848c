from django.apps import AppConfig


class TrackerConfig(AppConfig):
    name = "tracker"
    verbose_name = "Tracker"

    def ready(self):
        from .audit import register_audited_models
        from .caching import watch_tracked_models

        register_audited_models()
        watch_tracked_models()
