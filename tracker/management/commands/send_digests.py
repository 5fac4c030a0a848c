import time

from django.core.management.base import BaseCommand

from tracker.digests import send_due_digests


class Command(BaseCommand):
    help = (
        "Send the due progress digests now, in this process: what the hourly Celery task "
        "does. Each subscriber gets at most one digest per period, however often this runs."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Build the due digests and count what would be sent; send and record nothing.",
        )
        parser.add_argument(
            "--now",
            action="store_true",
            help="Send the digests of the period under way (this week or month) instead of "
            "waiting for it to end; that period then counts as sent.",
        )

    def handle(self, *args, dry_run, now, **options):
        verbosity = options["verbosity"]
        started = time.monotonic()

        def report(done, total, outcomes):
            if verbosity >= 1:
                summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
                self.stdout.write(f"[{done}/{total}] {summary}")

        outcomes = send_due_digests(current=now, dry_run=dry_run, progress=report)
        if not outcomes:
            self.stdout.write("No digests are due.")
            return
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        verb = "Built" if dry_run else "Processed"
        total = sum(outcomes.values())
        line = f"{verb} {total} digest(s) in {elapsed:.1f} s: {summary}."
        self.stdout.write(
            self.style.ERROR(line) if outcomes.get("failed") else self.style.SUCCESS(line)
        )
