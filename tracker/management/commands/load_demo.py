from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tracker.demo import load_demo

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"


class Command(BaseCommand):
    help = "Load the demo: the WRC 2024 brief, the 2021 Hill op-ed, and news reports as evidence."

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo-user",
            action="store_true",
            help="Also create a demo-only superuser (demo/demo). Refused unless DEBUG is on.",
        )

    def handle(self, *args, demo_user, **options):
        if demo_user and not settings.DEBUG:
            raise CommandError("--demo-user is for local demos only: it is refused with DEBUG off.")
        verbose = options["verbosity"] >= 1
        summary = load_demo(progress=self.stdout.write if verbose else lambda message: None)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo loaded: {summary.documents} documents, {summary.recommendations} "
                f"recommendations, {summary.evidence} evidence items, "
                f"{summary.status_changes} new status changes."
            )
        )
        if demo_user:
            self.create_demo_user()

    def create_demo_user(self):
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        self.stdout.write(
            self.style.WARNING(
                f"DEMO ONLY: log in to /admin/ as {DEMO_USERNAME!r} with password "
                f"{DEMO_PASSWORD!r}. Never create this account on a real deployment."
            )
        )
