from django.apps import AppConfig


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
