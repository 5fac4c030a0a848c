from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from tracker.demo import load_demo

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"
# A second demo login in the Editor role (tracker/migrations/0005_roles.py), to show what
# policy staff see: no users, schedules or tokens.
DEMO_EDITOR_USERNAME = "editor"
DEMO_EDITOR_PASSWORD = "editor"


class Command(BaseCommand):
    help = "Load the demo: the WRC 2024 brief, the 2021 Hill op-ed, and news reports as evidence."

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo-user",
            action="store_true",
            help="Also create demo-only logins: an administrator (demo/demo) and an editor "
            "(editor/editor). Refused unless DEBUG or demo mode (TRACKER_DEMO) is on.",
        )

    def handle(self, *args, demo_user, **options):
        if demo_user and not (settings.DEBUG or settings.TRACKER_DEMO):
            raise CommandError(
                "--demo-user is for local demos only: it is refused with DEBUG off "
                "outside demo mode (TRACKER_DEMO)."
            )
        verbose = options["verbosity"] >= 1
        summary = load_demo(
            progress=self.stdout.write if verbose else lambda message: None,
            # In demo mode the site serves pages of its own for the demo to watch.
            sources_at=settings.TRACKER_BASE_URL if settings.TRACKER_DEMO else "",
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo loaded: {summary.documents} documents, {summary.recommendations} "
                f"recommendations, {summary.evidence} evidence items, "
                f"{summary.status_changes} new status changes."
            )
        )
        if summary.sources:
            self.stdout.write(
                f"Watching {summary.sources} pages the demo serves at "
                f"{settings.TRACKER_BASE_URL}/demo-sources/: versions and feed entries show in "
                "the admin as soon as the server answers, a change alert a minute or so later."
            )
        if demo_user:
            self.create_demo_user()

    def create_demo_user(self):
        admin = demo_login(DEMO_USERNAME, DEMO_PASSWORD)
        admin.is_superuser = True
        admin.save()
        editor = demo_login(DEMO_EDITOR_USERNAME, DEMO_EDITOR_PASSWORD)
        editor.groups.set([Group.objects.get(name="Editor")])
        self.stdout.write(
            self.style.WARNING(
                "DEMO ONLY: log in to /admin/ as "
                f"{DEMO_USERNAME!r} (password {DEMO_PASSWORD!r}): an administrator, who sees "
                "everything, users, schedules and tokens included; or as "
                f"{DEMO_EDITOR_USERNAME!r} (password {DEMO_EDITOR_PASSWORD!r}): an editor, who "
                "records status changes and evidence and triages alerts, as policy staff do. "
                "Never create these accounts on a real deployment."
            )
        )


def demo_login(username, password):
    """A staff account for the demo, with this password, whatever it was before."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_staff = True
    user.is_superuser = False
    user.set_password(password)
    user.save()
    return user
