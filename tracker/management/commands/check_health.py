"""Check the database and the broker as /healthz does: for containers that serve no HTTP."""

import json

from django.core.management.base import BaseCommand, CommandError

from tracker.health import OK, check_health


class Command(BaseCommand):
    help = "Check the database and the Celery broker; exit 1 if either does not answer."

    def handle(self, **options):
        health = check_health()
        self.stdout.write(json.dumps(health))
        if health["status"] != OK:
            raise CommandError("Unhealthy: " + json.dumps(health))
