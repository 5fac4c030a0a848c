from django.core.management.base import BaseCommand, CommandError

from tracker.backup import BackupError, write_backup


class Command(BaseCommand):
    help = (
        "Back up everything Tracker tracks to one JSON file (gzipped if the name ends in .gz); "
        "import_tracker restores it."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The file to write, e.g. tracker-2024-08-01.json.gz.")

    def handle(self, *args, path, **options):
        def report(label, count):
            if options["verbosity"] >= 1:
                self.stdout.write(f"  {label}: {count}")

        self.stdout.write(f"Exporting to {path}…")
        try:
            counts = write_backup(path, progress=report)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(f"Exported {sum(counts.values())} objects."))
