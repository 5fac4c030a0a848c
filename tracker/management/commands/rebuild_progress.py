import time

from django.core.management.base import BaseCommand

from tracker.ledger import rebuild_ledger
from tracker.models import ProgressDelta, ProgressShare


class Command(BaseCommand):
    help = (
        "Recompute the progress ledger (what the progress series reads) from the status "
        "history, in one transaction: after a bulk load that skipped record_status, or to "
        "check that it says what the history says."
    )

    def handle(self, *args, **options):
        started = time.monotonic()
        rebuild_ledger()
        self.stdout.write(
            f"Progress ledger rebuilt: {ProgressShare.objects.count()} shares, "
            f"{ProgressDelta.objects.count()} monthly rows in {time.monotonic() - started:.1f} s."
        )
