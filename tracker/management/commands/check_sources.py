import logging
import os
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from tracker.models import Source
from tracker.monitoring import (
    PROCESSES_MIN_SOURCES,
    Outcome,
    check_sources,
    claim_due_sources,
)


class Command(BaseCommand):
    # Run every minute where there is no Celery: the system checks (half a second, mostly
    # loading every URL and view) belong to deploys and `manage.py check`, not to each run.
    requires_system_checks = []
    help = (
        "Check watched sources now, in this process: what the Celery dispatcher does every "
        "minute. With --watch, keep checking due sources (for setups without Celery)."
    )

    def run_from_argv(self, argv):
        super().run_from_argv(argv)  # the command has run, and closed its connections
        # Run from a shell or cron, the process ends here: leave without tearing down its
        # objects one by one, a tenth of a second of a run that takes about one. Errors
        # still exit the usual way (run_from_argv raises SystemExit).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--due", action="store_true", help="Only sources whose next check is due (default)."
        )
        which.add_argument("--all", action="store_true", help="Every active source.")
        parser.add_argument("--concurrency", type=int, default=16, help="Checks at once.")
        parser.add_argument(
            "--processes",
            type=int,
            help=(
                "Processes that fetch and read pages (default: one per CPU for "
                f"{PROCESSES_MIN_SOURCES} sources or more; 0: threads of this process only)."
            ),
        )
        parser.add_argument(
            "--watch",
            type=int,
            metavar="SECONDS",
            help="Check due sources again every SECONDS until interrupted.",
        )

    def handle(self, *args, all, concurrency, processes, watch, **options):
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        if processes is not None and processes < 0:
            raise CommandError("--processes must be 0 or more.")
        self.processes = processes
        if watch is not None and (watch < 1 or all):
            raise CommandError("--watch takes a positive number of seconds, and not --all.")
        self.verbosity = options["verbosity"]
        if watch is None:
            self.check_once(all=all, concurrency=concurrency, quiet_when_idle=False)
            return
        self.stdout.write(f"Checking due sources every {watch} s; Ctrl-C stops.")
        try:
            while True:
                self.check_once(all=False, concurrency=concurrency, quiet_when_idle=True)
                time.sleep(watch)
        except KeyboardInterrupt:
            self.stdout.write("Stopped watching.")

    def check_once(self, *, all, concurrency, quiet_when_idle):
        if all:
            sources = list(Source.objects.filter(is_active=True))
        else:
            # Claimed as the dispatcher claims them, so a running beat never checks them too.
            sources = list(Source.objects.filter(pk__in=claim_due_sources(queued=False)))
        if not sources:
            if not quiet_when_idle:
                self.stdout.write("No sources to check.")
            return
        total = len(sources)
        self.stdout.write(f"Checking {total} source(s), {concurrency} at a time…")
        started = time.monotonic()
        done = 0

        def report(source, result):
            nonlocal done
            done += 1
            if self.verbosity < 1:
                return
            line = f"[{done}/{total}] {source.url}: {result.outcome.replace('_', ' ')}"
            if result.error:
                line += f" ({result.error})"
            if result.new_entries:
                line += f", {result.new_entries} new feed entries"
            if result.outcome == Outcome.FAILED:
                line = self.style.ERROR(line)
            elif result.outcome == Outcome.CHANGED and source.kind == Source.Kind.PAGE:
                line = self.style.WARNING(line + " (see Change alerts)")
            elif result.new_entries:
                line = self.style.WARNING(line + " (see Feed entries)")
            self.stdout.write(line)

        outcomes = check_sources(
            sources, concurrency=concurrency, processes=self.processes, progress=report
        )
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in outcomes.items())
        self.stdout.write(
            self.style.SUCCESS(f"Checked {total} source(s) in {elapsed:.1f} s: {summary}.")
        )
