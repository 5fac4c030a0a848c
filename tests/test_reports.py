"""Progress reports to hand over: for a document, an agency with its sub-agencies, a theme or
everything, as of a date and over a period; as a page to print, a PDF, a CSV and an XLSX."""

import csv
import datetime
import io

import pdfplumber
import pytest
from django.urls import reverse
from openpyxl import load_workbook

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
    ThemeFactory,
)
from tracker.models import Ownership, Recommendation
from tracker.reports import local_stylesheet, progress_report

pytestmark = pytest.mark.django_db
Status = Recommendation.Status


@pytest.fixture
def brief():
    """A document with three public asks and a draft, a history over 2024 and evidence."""
    dhs = AgencyFactory(name="Department of Homeland Security", acronym="DHS")
    uscis = AgencyFactory(name="Citizenship Services", acronym="USCIS", parent=dhs)
    state = AgencyFactory(name="Department of State", acronym="DOS")
    document = DocumentFactory(code="WRC-2024", title="Migration Does Not Start at the Border")
    parole = RecommendationFactory(
        document=document, code="WRC-2024-1", title="Expand parole", lead=uscis, position=1
    )
    Ownership.objects.create(recommendation=parole, agency=state, role="supporting")
    minors = RecommendationFactory(
        document=document, code="WRC-2024-2", title="Reopen the minors program", lead=state,
        position=2,
    )  # fmt: skip
    RecommendationFactory(
        document=document, code="WRC-2024-3", title='=HYPERLINK("http://x")', position=3
    )
    RecommendationFactory(
        document=document, code="WRC-2024-4", title="Secret draft ask", is_published=False
    )
    parole.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 3, 1), rationale="Memo."
    )
    widened = EvidenceFactory(title="USCIS widens parole", published_on=datetime.date(2024, 9, 1))
    parole.record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 9, 1), evidence=[widened]
    )
    minors.record_status(
        Status.STALLED, effective_on=datetime.date(2024, 5, 1), rationale="Bill died."
    )
    minors.themes.add(ThemeFactory(name="Children", slug="children"))
    return document


def page(client, **params):
    return client.get(reverse("public:report"), params)


def test_a_document_report_as_of_today_lists_each_public_ask_with_its_status(client, brief):
    response = page(client, document="WRC-2024")
    text = response.content.decode()
    assert response.status_code == 200
    assert "WRC-2024: Migration Does Not Start at the Border" in text
    assert "Expand parole" in text and "Reopen the minors program" in text
    assert "Secret draft ask" not in text
    report = response.context["report"]
    assert [(row.recommendation.code, row.status, row.since) for row in report.rows] == [
        ("WRC-2024-1", Status.IMPLEMENTED, datetime.date(2024, 9, 1)),
        # Stalled on 1 May, before the document of 1 July: background, "since" its date.
        ("WRC-2024-2", Status.STALLED, datetime.date(2024, 7, 1)),
        ("WRC-2024-3", Status.NOT_ASSESSED, None),
    ]
    assert report.rows[0].lead == "USCIS" and report.rows[0].supporting == ["DOS"]
    assert report.rows[0].latest_evidence.title == "USCIS widens parole"


def test_a_report_as_of_an_earlier_day_shows_the_record_as_it_stood(brief):
    report = progress_report(document=brief, as_of=datetime.date(2024, 6, 30))
    statuses = {row.recommendation.code: row.status for row in report.rows}
    assert statuses == {
        "WRC-2024-1": Status.IN_PROGRESS,
        "WRC-2024-2": Status.STALLED,
        "WRC-2024-3": Status.NOT_ASSESSED,
    }
    assert report.rows[0].latest_evidence is None  # published after the report's day
    assert report.progress.counts[Status.IN_PROGRESS] == 1
    assert report.progress.percent == round((0.25 + 0 + 0) / 3 * 100)


def test_a_period_marks_what_moved_from_what_to_what(client, brief):
    response = page(client, document="WRC-2024", as_of="2024-09-30", since="2024-06-01")
    report = response.context["report"]
    moved = {row.recommendation.code: row.moved for row in report.rows}
    assert moved == {
        "WRC-2024-1": (Status.IN_PROGRESS, Status.IMPLEMENTED, datetime.date(2024, 9, 1)),
        "WRC-2024-2": None,  # stalled in May, before the period
        "WRC-2024-3": None,
    }
    text = response.content.decode()
    assert "1 recommendation moved from" in text
    assert "In progress → Implemented" in text


def test_an_agency_report_includes_its_sub_agencies(client, brief):
    report = page(client, agency="dhs").context["report"]
    assert [row.recommendation.code for row in report.rows] == ["WRC-2024-1"]
    assert report.scope == "DHS and its sub-agencies"
    assert [
        row.recommendation.code for row in page(client, theme="children").context["report"].rows
    ] == ["WRC-2024-2"]


def test_the_csv_has_status_since_owners_and_evidence_and_no_formulas(client, brief):
    response = client.get(reverse("public:report_csv"), {"document": "WRC-2024"})
    assert response["Content-Disposition"] == (
        f'attachment; filename="progress-WRC-2024-{datetime.date.today().isoformat()}.csv"'
    )
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    header = lines.index(["document", "code", "title", "status", "since", "last verified", "lead",
                          "supporting", "moved in period", "latest evidence", "evidence date",
                          "evidence link", "page"])  # fmt: skip
    rows = {line[1]: line for line in lines[header + 1 :]}
    assert set(rows) == {"WRC-2024-1", "WRC-2024-2", "WRC-2024-3"}
    parole = rows["WRC-2024-1"]
    today = datetime.date.today().isoformat()  # recorded today: verified today
    assert parole[3:8] == ["Implemented", "2024-09-01", today, "USCIS", "DOS"]
    assert parole[9:11] == ["USCIS widens parole", "2024-09-01"]
    assert parole[12] == "http://testserver/documents/WRC-2024/recommendations/WRC-2024-1/"
    assert rows["WRC-2024-3"][2] == '\'=HYPERLINK("http://x")'


def test_the_xlsx_holds_the_same_lines_as_text(client, brief):
    response = client.get(reverse("public:report_xlsx"), {"document": "WRC-2024"})
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = {row[1].value: row for row in sheet.iter_rows() if row[1].value}
    formula = rows["WRC-2024-3"][2]
    assert formula.value == '=HYPERLINK("http://x")' and formula.data_type == "s"
    assert rows["WRC-2024-1"][3].value == "Implemented"


def test_the_pdf_is_the_printed_page(client, brief):
    response = client.get(reverse("public:report_pdf"), {"document": "WRC-2024"})
    assert response["Content-Type"] == "application/pdf"
    with pdfplumber.open(io.BytesIO(response.content)) as pdf:
        text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "As of" in text and "Expand parole" in text
    assert "Secret draft ask" not in text
    assert "Show the report" not in text  # the form is left out of print


def test_the_pdf_maker_reads_our_stylesheets_and_fetches_nothing_else():
    assert b".report-table" in local_stylesheet("file:///static/tracker/public.css")
    for url in [
        "http://127.0.0.1:9/evil.css",
        "file:///etc/passwd",
        "file:///static/../settings.py",
        "file:///static/tracker/../../../config/settings.css",
        "file:///static/tracker/admin.js",
    ]:
        assert local_stylesheet(url) is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"document": "WRC-2024", "agency": "dhs"}, "Choose one document, one agency or one theme"),
        ({"since": "2024-10-01", "as_of": "2024-09-01"}, "Choose a day before the report"),
        ({"as_of": "2999-01-01"}, "Choose a day up to today."),
        ({"document": "NOPE"}, "Select a valid choice"),
        ({"as_of": "yesterday"}, "Enter a valid date."),
    ],
)
def test_bad_choices_are_explained(client, brief, params, message):
    response = page(client, **params)
    assert response.status_code == 400
    assert message in response.content.decode()
    file = client.get(reverse("public:report_csv"), params)
    assert file.status_code == 400 and message in file.content.decode()


def test_a_draft_only_document_has_no_report(client):
    draft = RecommendationFactory(is_published=False)
    assert page(client, document=draft.document.code).status_code == 400


def test_the_report_costs_the_same_queries_for_more_asks(
    client, brief, django_assert_max_num_queries
):
    page(client, document="WRC-2024")  # warm the session and caches
    with django_assert_max_num_queries(12) as small:
        page(client, document="WRC-2024")
    for number in range(5, 25):
        RecommendationFactory(document=brief, code=f"WRC-2024-{number}", lead=AgencyFactory())
    with django_assert_max_num_queries(len(small.captured_queries)):
        page(client, document="WRC-2024")


def test_document_and_agency_pages_link_to_their_report(client, brief):
    document_page = client.get(reverse("public:document", args=["WRC-2024"])).content.decode()
    assert f"{reverse('public:report')}?document=WRC-2024" in document_page
    agency_page = client.get(reverse("public:agency", args=["dhs"])).content.decode()
    assert f"{reverse('public:report')}?agency=dhs" in agency_page


def test_history_before_the_document_is_background_in_a_report(brief):
    brief.published_on = datetime.date(2024, 6, 1)
    brief.save()
    report = progress_report(document=brief, as_of=datetime.date(2024, 12, 31))
    rows = {row.recommendation.code: row for row in report.rows}
    minors = rows["WRC-2024-2"]  # stalled on 1 May 2024, before the document
    assert (minors.since, minors.background_since) == (
        datetime.date(2024, 6, 1),
        datetime.date(2024, 5, 1),
    )
    assert rows["WRC-2024-1"].background_since is None


def test_an_earlier_report_names_no_check_made_after_its_day(brief):
    earlier = progress_report(document=brief, as_of=datetime.date(2024, 6, 30))
    assert all(row.last_verified_on is None for row in earlier.rows)
    today = progress_report(document=brief)
    assert today.rows[0].last_verified_on == datetime.date.today()
    assert today.progress.assessed == 2 and today.progress.not_assessed == 1


def test_an_agency_report_with_nothing_assigned_says_so(client, brief):
    AgencyFactory(name="Bureau of Nothing Yet", acronym="BNY")
    text = page(client, agency="bny").content.decode()
    assert "Nothing assigned: no published recommendation is addressed to this agency." in text


def test_a_parent_reads_as_its_sub_recommendations_say_never_against_them(brief):
    parole = Recommendation.objects.get(code="WRC-2024-1")
    RecommendationFactory(document=brief, code="WRC-2024-0", title="Open pathways", position=0)
    parole.parent = Recommendation.objects.get(code="WRC-2024-0")
    parole.save()
    report = progress_report(document=brief, as_of=datetime.date(2024, 6, 30))
    parent = next(row for row in report.rows if row.recommendation.code == "WRC-2024-0")
    # Nobody assessed the parent itself; its only child was in progress by then.
    assert parent.status == Status.IN_PROGRESS and parent.rollup.from_children
    assert parent.since is None
    assert report.progress.counts[Status.IN_PROGRESS] == 2  # the child, and its parent
    assert report.progress.counts[Status.NOT_ASSESSED] == 1  # WRC-2024-3 only
