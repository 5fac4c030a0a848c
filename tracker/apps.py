from django.apps import AppConfig


class TrackerConfig(AppConfig):
    name = "tracker"
    verbose_name = "Tracker"

    def ready(self):
        from .caching import watch_tracked_models

        watch_tracked_models()
