from django.core.management.base import BaseCommand, CommandError

from tracker.backup import DEFAULT_MAX_BYTES, BackupError, read_backup, restore_data

MEGABYTE = 1024 * 1024


class Command(BaseCommand):
    help = (
        "Restore a backup written by export_tracker, all or nothing, into a database that "
        "tracks nothing yet (or, with --replace, in place of what it tracks)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="A file written by export_tracker (.json or .json.gz).")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Delete the tracked data already in this database first (accounts are kept).",
        )
        parser.add_argument(
            "--allow-empty",
            action="store_true",
            help="With --replace, accept a backup that holds nothing (it empties the tracker).",
        )
        parser.add_argument(
            "--max-size",
            type=int,
            default=DEFAULT_MAX_BYTES // MEGABYTE,
            metavar="MB",
            help="Refuse a file larger than this once decompressed (default: %(default)s MB).",
        )

    def handle(self, *args, path, replace, allow_empty, max_size, **options):
        def report(label, count):
            if options["verbosity"] >= 1:
                self.stdout.write(f"  {label}: {count}")

        try:
            data = read_backup(path, max_bytes=max_size * MEGABYTE)
            self.stdout.write(f"Restoring {len(data['objects'])} objects from {path}…")
            counts, unlinked = restore_data(
                data, replace=replace, allow_empty=allow_empty, progress=report
            )
        except BackupError as error:
            raise CommandError(f"{error} Nothing was restored.") from error
        if unlinked:
            self.stdout.write(
                self.style.WARNING(
                    f"{unlinked} subscription(s) named an account of this site but not its "
                    "address: they were restored as public subscriptions (no staff digest)."
                )
            )
        self.stdout.write(self.style.SUCCESS(f"Restored {sum(counts.values())} objects."))
