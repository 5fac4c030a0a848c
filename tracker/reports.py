"""Progress reports staff can hand over: for a document, an agency (with its sub-agencies), a
theme or everything, as of a date and optionally over a period; as a printable page, a PDF, a
CSV or an XLSX file. Public data only, so a report can be shared as it is."""

import csv
import datetime
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.db.models import Prefetch
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from .importing import escape_formula
from .labels import status_label
from .models import Evidence, Ownership, Recommendation, StatusChange
from .progress import Progress, Rollup, rolled_up_progress, rollups_of_tree

Status = Recommendation.Status


@dataclass
class ReportRow:
    recommendation: Recommendation
    status: str
    since: datetime.date | None
    # The change's own date when it predates the document (the status is then "since" the
    # document's date), else None.
    background_since: datetime.date | None
    lead: str
    supporting: list[str]
    # When staff last confirmed the status (Recommendation.last_verified_on), if by the
    # report's day: only the latest check is kept, so an earlier report cannot name its own.
    last_verified_on: datetime.date | None = None
    # What its sub-recommendations in the report say, for a parent (progress.Rollup).
    rollup: Rollup | None = None
    # The status change inside the period, if any: (from status, to status, effective date).
    moved: tuple[str, str, datetime.date] | None = None
    latest_evidence: Evidence | None = None

    @property
    def status_label(self):
        return status_label(self.status)


@dataclass
class Report:
    scope: str  # "WRC-2024: Migration Does Not Start…", "USCIS and its sub-agencies", "everything"
    as_of: datetime.date
    period_start: datetime.date | None
    rows: list[ReportRow] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    generated_at: datetime.datetime = field(default_factory=timezone.now)

    @property
    def moved_count(self):
        return sum(row.moved is not None for row in self.rows)


def progress_report(*, document=None, agency=None, theme=None, as_of=None, period_start=None):
    """Build the report of the public recommendations in scope, their status at the end of
    `as_of` (default today) and, with `period_start`, the changes effective in the period
    from `period_start` to `as_of`, both days included. Four queries and a few per page of
    evidence, whatever the number of recommendations."""
    as_of = as_of or timezone.localdate()
    recommendations = Recommendation.objects.public().select_related("document", "parent")
    if document is not None:
        recommendations = recommendations.filter(document=document)
        scope = f"{document.code}: {document.title}"
    elif agency is not None:
        family = agency.family_ids()
        recommendations = recommendations.filter(ownerships__agency__in=family).distinct()
        scope = (
            _("%(agency)s and its sub-agencies") % {"agency": agency.display_name}
            if len(family) > 1
            else agency.display_name
        )
    elif theme is not None:
        recommendations = recommendations.filter(themes=theme)
        scope = _("Theme: %(theme)s") % {"theme": theme.name}
    else:
        scope = _("All tracked recommendations")
    recommendations = list(
        recommendations.order_by(
            "document__published_on", "document__code", "position", "pk"
        ).prefetch_related(
            Prefetch("ownerships", queryset=Ownership.objects.select_related("agency")),
            Prefetch(
                "evidence",
                queryset=Evidence.objects.public()
                .filter(published_on__lte=as_of)
                .order_by("-published_on", "-pk"),
                to_attr="evidence_by_then",
            ),
        )
    )
    histories = defaultdict(list)
    changes = StatusChange.objects.filter(
        recommendation__in=[r.pk for r in recommendations], effective_on__lte=as_of
    ).order_by("effective_on", "recorded_at", "pk")
    for change in changes.only("recommendation_id", "status", "effective_on"):
        histories[change.recommendation_id].append(change)
    report = Report(scope=scope, as_of=as_of, period_start=period_start)
    for recommendation in recommendations:
        row = report_row(recommendation, histories[recommendation.pk], period_start)
        verified = recommendation.last_verified_on
        row.last_verified_on = verified if verified and verified <= as_of else None
        report.rows.append(row)
    show_roll_ups(report.rows)
    report.progress = summarise(report.rows)
    return report


def show_roll_ups(rows):
    """Give each parent among `rows` the status its sub-recommendations in the report give it
    (progress.roll_up, the site's one rule), so a report never shows a parent contradicting
    its children; one whose status comes from them has no "since" of its own."""
    in_report = {row.recommendation.pk for row in rows}
    rollups = rollups_of_tree(
        [
            (
                row.recommendation.pk,
                row.recommendation.parent_id if row.recommendation.parent_id in in_report else None,
                row.status,
            )
            for row in rows
        ]
    )
    for row in rows:
        row.rollup = rollups.get(row.recommendation.pk)
        if row.rollup and row.rollup.from_children:
            row.status = row.rollup.status
            row.since = row.background_since = None


def report_row(recommendation, history, period_start):
    """One recommendation's line: its status then (the last change in effect), since when,
    owners, the change within the period and the latest evidence published by then."""
    latest = history[-1] if history else None
    moved = None
    if period_start is not None and latest is not None and latest.effective_on >= period_start:
        before = [change for change in history if change.effective_on < period_start]
        previous = before[-1].status if before else Status.NOT_ASSESSED.value
        moved = (previous, latest.status, latest.effective_on)
    ownerships = recommendation.ownerships.all()
    since = latest.effective_on if latest else None
    document = recommendation.document
    return ReportRow(
        recommendation=recommendation,
        status=latest.status if latest else Status.NOT_ASSESSED.value,
        # History from before the document is background: the status reads since its date.
        since=document.published_on if document.predates(since) else since,
        background_since=since if document.predates(since) else None,
        lead=next((o.agency.display_name for o in ownerships if o.role == "lead"), ""),
        supporting=[o.agency.display_name for o in ownerships if o.role != "lead"],
        moved=moved,
        latest_evidence=next(iter(recommendation.evidence_by_then), None),
    )


def summarise(rows):
    """Counts by status, and progress averaged over the top-level recommendations in the
    report, each rolled up from its sub-recommendations as the site does."""
    summary = Progress()
    for row in rows:
        summary.counts[row.status] += 1
    in_report = {row.recommendation.pk for row in rows}
    tree = [
        (
            row.recommendation.pk,
            row.recommendation.parent_id if row.recommendation.parent_id in in_report else None,
            row.recommendation.weight,
            row.status,
        )
        for row in rows
    ]
    progress = rolled_up_progress(tree)
    roots = [pk for pk, parent_id, _weight, _status in tree if parent_id is None]
    summary.progress = sum(progress[pk] for pk in roots) / len(roots) if roots else 0.0
    return summary


# --- Files -------------------------------------------------------------------------------

COLUMNS = [
    "document",
    "code",
    "title",
    "status",
    "since",
    "last verified",
    "lead",
    "supporting",
    "moved in period",
    "latest evidence",
    "evidence date",
    "evidence link",
    "page",
]


def report_lines(report, *, site_url):
    """The report as rows of plain values, the header first, for CSV and XLSX."""
    yield [_("Progress report: %(scope)s") % {"scope": report.scope}]
    yield [_("As of %(date)s") % {"date": report.as_of.isoformat()}]
    if report.period_start:
        yield [
            _("Changes from %(start)s to %(end)s")
            % {"start": report.period_start.isoformat(), "end": report.as_of.isoformat()}
        ]
    yield []
    yield COLUMNS
    for row in report.rows:
        recommendation, evidence = row.recommendation, row.latest_evidence
        moved = ""
        if row.moved:
            old, new, day = row.moved
            moved = f"{status_label(old)} → {status_label(new)} ({day.isoformat()})"
        yield [
            recommendation.document.code,
            recommendation.code,
            recommendation.title,
            str(row.status_label),
            row.since.isoformat() if row.since else "",
            row.last_verified_on.isoformat() if row.last_verified_on else "",
            row.lead,
            "; ".join(row.supporting),
            moved,
            evidence.title if evidence else "",
            evidence.published_on.isoformat() if evidence and evidence.published_on else "",
            evidence.url if evidence else "",
            site_url + recommendation_path(recommendation),
        ]


def recommendation_path(recommendation):
    return reverse(
        "public:recommendation", args=[recommendation.document.code, recommendation.code]
    )


def report_csv(report, *, site_url):
    output = io.StringIO()
    writer = csv.writer(output)
    for line in report_lines(report, site_url=site_url):
        writer.writerow([escape_formula(str(cell)) for cell in line])
    return output.getvalue()


def report_xlsx(report, *, site_url):
    """The report as an Excel workbook; every cell is text or a date, never a formula."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _("Progress")
    for line in report_lines(report, site_url=site_url):
        sheet.append([None] * len(line))
        for column, value in enumerate(line, start=1):
            cell = sheet.cell(row=sheet.max_row, column=column)
            cell.value = value
            cell.data_type = "s"  # a title opening with "=" stays text
    header_row = 6 if report.period_start else 5
    for cell in sheet[header_row]:
        cell.font = Font(bold=True)
    widths = {"A": 14, "B": 16, "C": 60, "D": 22, "E": 12, "F": 12, "G": 20, "H": 34, "I": 50}
    for letter, width in widths.items():
        sheet.column_dimensions[letter].width = width
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


def local_stylesheet(url):
    """Our own stylesheet at `url` (file:///static/…), as collected or in the app, or None:
    nothing from any network, nothing else on disk."""
    prefix = "file:///" + settings.STATIC_URL.lstrip("/")
    relative = url.removeprefix(prefix) if url.startswith(prefix) else ""
    if not relative.endswith(".css") or ".." in relative.split("/"):
        return None
    if settings.STATIC_ROOT and (collected := Path(settings.STATIC_ROOT) / relative).is_file():
        return collected.read_bytes()
    found = finders.find(relative)
    return Path(found).read_bytes() if found else None


def pdf_fetcher():
    """WeasyPrint's fetcher for reports: local_stylesheet, and a refusal for anything else."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class LocalStylesheets(URLFetcher):
        def fetch(self, url, headers=None):
            body = local_stylesheet(url)
            if body is None:
                raise ValueError(f"not fetched: {url}")
            return URLFetcherResponse(url, body, headers={"Content-Type": "text/css"})

    return LocalStylesheets(allowed_protocols=["file"])


def report_pdf(html):
    """The printable page as a PDF (WeasyPrint), with the print stylesheet and no fetching."""
    from weasyprint import HTML

    return HTML(string=html, base_url="file:///", url_fetcher=pdf_fetcher()).write_pdf()
