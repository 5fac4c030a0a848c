from django.core.management.base import BaseCommand, CommandError

from tracker.backup import BackupError, read_backup, restore_data


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

    def handle(self, *args, path, replace, **options):
        def report(label, count):
            if options["verbosity"] >= 1:
                self.stdout.write(f"  {label}: {count}")

        try:
            data = read_backup(path)
            self.stdout.write(f"Restoring {len(data['objects'])} objects from {path}…")
            counts = restore_data(data, replace=replace, progress=report)
        except BackupError as error:
            raise CommandError(f"{error} Nothing was restored.") from error
        self.stdout.write(self.style.SUCCESS(f"Restored {sum(counts.values())} objects."))
