import argparse
import datetime
import json
from pathlib import Path
from textwrap import shorten

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from tracker import texts
from tracker.importing import (
    FORMATS,
    DocumentImportError,
    attach_translation,
    default_document_code,
    fetch_source,
    import_document,
    read_source,
)
from tracker.models import Document
from tracker.proposals import propose_import
from tracker.reading import is_url


def iso_date(value):
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from None


class Command(BaseCommand):
    help = (
        "Import a document's recommendations from a file or a URL: Markdown, PDF, Word (.docx), "
        "HTML, plain text (a report or an op-ed) or CSV. Importing again updates them in place."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", metavar="PATH|URL", help="A file, or an http(s) URL to fetch.")
        parser.add_argument(
            "--format", dest="fmt", choices=FORMATS, help="Default: from the extension or content."
        )
        parser.add_argument(
            "--code", help="Document code, e.g. WRC-2024. Default: publisher acronym and year."
        )
        parser.add_argument("--title", help="Default: the document's first heading or line.")
        parser.add_argument("--publisher", help="Publisher's name; needed for a new document.")
        parser.add_argument("--publisher-acronym", default="")
        parser.add_argument("--kind", choices=Document.Kind.values)
        parser.add_argument("--published-on", type=iso_date, metavar="YYYY-MM-DD")
        parser.add_argument("--author", default="")
        parser.add_argument("--url", default="")
        parser.add_argument(
            "--addressee",
            default="",
            help="Whom the document addresses, by acronym or name from the agency directory "
            "(e.g. WH, Congress, DHS): the lead where a recommendation names none. Default: "
            "the agency the text most often addresses.",
        )
        parser.add_argument(
            "--draft", action="store_true", help="Leave new recommendations unpublished."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print every recommendation the import would save, and what would change; "
            "write nothing.",
        )
        parser.add_argument(
            "--review",
            action="store_true",
            help="Save nothing: leave the import as a proposal for staff to review, edit and "
            "confirm in the admin (Import proposals).",
        )
        parser.add_argument(
            "--lang",
            default="en",
            choices=[code for code, _name in settings.LANGUAGES],
            help="The language of this edition (default en): a new document's original "
            "language, or with --translation-of the translation's.",
        )
        parser.add_argument(
            "--translation-of",
            metavar="DOCUMENT_CODE",
            help="The file is the edition in --lang of this stored document: attach its texts "
            "to the recommendations imported from the original, matched by numbering and order "
            "(with --dry-run, print the pairing only).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the import (or, with --dry-run, the proposal) as one JSON object.",
        )

    def handle(self, *args, **options):
        if options["review"] and options["dry_run"]:
            raise CommandError(
                "--review and --dry-run exclude each other: a review saves nothing either."
            )
        path = options["path"]
        content_type = ""
        if options["translation_of"]:
            return self.attach_translation(path, options)
        try:
            if is_url(path):
                source, filename, content_type = fetch_source(path)
            else:
                source, filename = read_source(path), Path(path).name
            code = options["code"] or default_document_code(
                publisher=options["publisher"] or "",
                publisher_acronym=options["publisher_acronym"],
                published_on=options["published_on"],
            )
            (self.stderr if options["json"] else self.stdout).write(f"Importing {path} as {code}…")
            if options["review"]:
                return self.leave_for_review(path, source, filename, content_type, code, options)
            result = import_document(
                source,
                filename=filename,
                content_type=content_type,
                dry_run=options["dry_run"],
                language=options["lang"],
                **import_options(options, code=code, path=path),
            )
        except DocumentImportError as error:
            raise CommandError(f"{path}: {error}") from error
        if options["json"]:
            self.stdout.write(json.dumps(as_json(result), ensure_ascii=False, indent=2))
        else:
            self.report(result, verbosity=options["verbosity"])

    def attach_translation(self, path, options):
        """Pair the edition's recommendations with the stored ones and print the pairing;
        save them as the translation unless it is a dry run."""
        try:
            if is_url(path):
                source, filename, content_type = fetch_source(path)
            else:
                source, filename, content_type = read_source(path), Path(path).name, ""
            result = attach_translation(
                source,
                document_code=options["translation_of"],
                language=options["lang"],
                fmt=options["fmt"],
                filename=filename,
                content_type=content_type,
                dry_run=options["dry_run"],
            )
        except DocumentImportError as error:
            raise CommandError(f"{path}: {error}") from error
        language = result.language
        document = result.document
        self.stdout.write(
            f"{document.code}: {len(result.pairs)} recommendations paired with their "
            f"{language} version."
        )
        if result.document_title:
            self.stdout.write(f"  title  {document.title_en or document.title}")
            self.stdout.write(f"    {language}: {result.document_title}")
        for pair in result.pairs:
            recommendation = pair.recommendation
            original = texts.text_in(recommendation, "title", document.original_language)[0]
            self.stdout.write(f"  {recommendation.code}  {original}")
            self.stdout.write(f"    {language}: {pair.title}")
        if result.dry_run:
            self.stdout.write("Dry run: nothing was written.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Saved the {language} translation."))

    def leave_for_review(self, path, source, filename, content_type, code, options):
        proposal = propose_import(
            source,
            source_name=path,
            filename=filename,
            content_type=content_type,
            **import_options(options, code=code, path=path),
        )
        flagged = sum(bool(item["flags"]) for item in proposal.items)
        url = reverse("admin:tracker_importproposal_change", args=[proposal.pk])
        if options["json"]:
            data = {"proposal": proposal.pk, "review_url": url, "recommendations": proposal.items}
            self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2))
            return
        self.stdout.write(
            f"Read as {proposal.format}: {len(proposal.items)} recommendations, "
            f"{flagged} to check, {len(proposal.withdrawn)} to withdraw. Nothing was saved."
        )
        self.stdout.write(self.style.SUCCESS(f"Left for review in the admin: {url}"))

    def report(self, result, *, verbosity):
        document = result.document
        age = "new" if result.document_created else "existing"
        self.stdout.write(f"Read as {result.format}: {age} document {document.code}, {document}.")
        if result.dry_run:
            self.print_proposal(result.proposal)
        elif verbosity >= 2:
            for recommendation in result.created:
                lead = result.leads[recommendation.code]
                lead_name = lead.display_name if lead else "not found"
                self.stdout.write(
                    f"  + {recommendation.code}  lead {lead_name}  {recommendation.title}"
                )
        for moved in result.moved:
            recommendation = moved.recommendation
            if moved.old_code != recommendation.code:
                self.stdout.write(f"  moved {moved.old_code} -> {recommendation.code}")
            else:  # same code, new parent: a section heading that changed beyond recognition
                parent = recommendation.parent.code if recommendation.parent_id else "the top"
                self.stdout.write(f"  moved {recommendation.code} under {parent}")
        for reworded in result.reworded:
            self.stdout.write(f"  reworded {reworded.recommendation.code}: {reworded.diff}")
        for recommendation in result.restored:
            self.stdout.write(f"  restored {recommendation.code}  {recommendation.title}")
        if result.withdrawn:
            self.stdout.write(
                self.style.WARNING(
                    "Withdrawn (no longer in the document; kept with their history, "
                    "hidden from the public):"
                )
            )
            for recommendation in result.withdrawn:
                self.stdout.write(f"  - {recommendation.code}  {recommendation.title}")
        self.stdout.write(self.style.SUCCESS(result.summary()))
        if result.flags:
            self.stdout.write(self.style.WARNING(f"To review ({len(result.flags)}):"))
            for flag in result.flags:
                self.stdout.write(self.style.WARNING(f"  {flag}"))
        if result.dry_run:
            self.stdout.write("Dry run: nothing was written.")

    def print_proposal(self, proposal):
        """The whole proposal as a tree: outcome, code, owners, title, then what to check."""
        depth = {}
        marks = {"created": "+", "updated": "~", "unchanged": " "}
        for item in proposal:
            depth[item["code"]] = depth.get(item["parent"], -1) + 1 if item["parent"] else 0
            owners = item["lead"] or "owner not found"
            if item["supporting"]:
                owners += " + " + ", ".join(item["supporting"])
            indent = "  " * depth[item["code"]]
            self.stdout.write(
                f"{marks[item['outcome']]} {indent}{item['code']}  [{owners}]  {item['title']}"
            )
            if item["note"]:
                self.stdout.write(f"  {indent}    note: {shorten(item['note'], 100)}")


def import_options(options, *, code, path):
    """The command's options as the importer takes them."""
    return {
        "code": code,
        "fmt": options["fmt"],
        "title": options["title"],
        "publisher": options["publisher"],
        "publisher_acronym": options["publisher_acronym"],
        "kind": options["kind"],
        "published_on": options["published_on"],
        "author": options["author"],
        "url": options["url"] or (path if is_url(path) else ""),
        "addressee": options["addressee"],
        "publish_new": not options["draft"],
    }


def as_json(result):
    """The import as data: the document, every recommendation, what changed and what to check."""
    document = result.document
    return {
        "document": {
            "code": document.code,
            "title": document.title,
            "created": result.document_created,
        },
        "format": result.format,
        "dry_run": result.dry_run,
        "recommendations": result.proposal,
        "moved": [{"code": m.recommendation.code, "from": m.old_code} for m in result.moved],
        "reworded": [{"code": r.recommendation.code, "diff": r.diff} for r in result.reworded],
        "withdrawn": [recommendation.code for recommendation in result.withdrawn],
        "restored": [recommendation.code for recommendation in result.restored],
        "summary": result.summary(),
    }
