import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tracker.models import Source
from tracker.monitoring import Outcome, check_sources

OUTCOME_STYLE = {
    Outcome.CHANGED: "WARNING",
    Outcome.FAILED: "ERROR",
}


class Command(BaseCommand):
    help = "Check watched sources now, in this process (what the Celery dispatcher does)."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--due", action="store_true", help="Only sources whose next check is due (default)."
        )
        which.add_argument("--all", action="store_true", help="Every active source.")
        parser.add_argument("--concurrency", type=int, default=16, help="Checks at once.")

    def handle(self, *args, all, concurrency, **options):
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        sources = Source.objects.filter(is_active=True)
        if not all:
            sources = sources.filter(next_check_at__lte=timezone.now())
        sources = list(sources)
        if not sources:
            self.stdout.write("No sources to check.")
            return
        total = len(sources)
        self.stdout.write(f"Checking {total} source(s), {concurrency} at a time…")
        done = 0
        started = time.monotonic()

        def report(source, result):
            nonlocal done
            done += 1
            line = f"[{done}/{total}] {source.url}: {result.outcome.replace('_', ' ')}"
            if result.error:
                line += f" ({result.error})"
            if result.new_entries:
                line += f", {result.new_entries} new feed entries"
            style = getattr(self.style, OUTCOME_STYLE.get(result.outcome, "NOTICE"))
            if options["verbosity"] >= 1:
                self.stdout.write(style(line) if result.outcome in OUTCOME_STYLE else line)

        outcomes = check_sources(sources, concurrency=concurrency, progress=report)
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in outcomes.items())
        self.stdout.write(
            self.style.SUCCESS(f"Checked {total} source(s) in {elapsed:.1f} s: {summary}.")
        )
