import datetime
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
)
from tests.support.pages import text_of
from tracker.demo import load_demo
from tracker.ledger import refresh_stale
from tracker.models import (
    STATUS_WEIGHTS,
    ChangeAlert,
    Document,
    Ownership,
    Recommendation,
    Source,
    SourceVersion,
)

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE_BREAK = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def demo(db):
    load_demo()


def page(client, url, **headers):
    response = client.get(url, **headers)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def record(recommendation, status, *, on, evidence=(), rationale="Recorded in a test."):
    return recommendation.record_status(
        status, effective_on=on, evidence=evidence, rationale=rationale
    )


def keep_version(source, *, text="The page as it read.", fetched_at=None, content_hash=None):
    return SourceVersion.objects.create(
        source=source,
        content_hash=content_hash or str(SourceVersion.objects.count()),
        title=source.title or "Kept page",
        text=text,
        url=source.url,
        http_status=200,
        fetched_at=fetched_at or timezone.now(),
    )


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


# The demo pages: what a visitor sees


def test_home_lists_every_document_with_its_progress_and_counts(demo, client):
    text = text_of(page(client, "/"))

    for document in Document.objects.all():
        assert document.title in text
        total = document.recommendations.filter(is_published=True).count()
        assert f"{total} recommendations" in text
    assert "% implemented (weighted)" in text
    assert "In progress" in text


def test_home_shows_recent_status_changes_and_new_evidence(demo, client):
    html = page(client, "/")
    text = text_of(html)

    assert "Recent status changes" in text
    assert "DHS expands the Central American Minors program to more relatives" in text
    changed = Recommendation.objects.filter(status_changes__isnull=False).select_related("document")
    for recommendation in changed:
        assert recommendation.get_absolute_url() in html


def test_document_page_groups_recommendations_by_section_with_status_lead_and_update(demo, client):
    document = Document.objects.get(code="WRC-2024")
    html = page(client, document.get_absolute_url())
    text = text_of(html)

    sections = set(document.recommendations.values_list("section_title", flat=True))
    assert html.count('class="doc-section"') == len(sections)
    for section in sections:
        assert section in text
    changed = document.recommendations.exclude(status_changed_on=None).first()
    assert changed.get_absolute_url() in html
    assert '<a href="/agencies/wh/">WH</a>' in html
    assert changed.status_changed_on.strftime("%B %-d, %Y") in text
    assert "No change recorded" in text


def test_document_page_has_a_progress_chart_with_a_text_alternative(demo, client):
    html = page(client, "/documents/WRC-2024/")

    assert '<svg class="chart"' in html
    assert 'role="img"' in html
    assert '<title id="progress-chart-title">Progress of WRC-2024 over time</title>' in html
    assert re.search(r"<desc id=\"progress-chart-desc\">Progress went from \d+% to \d+%", html)
    table = html[html.index("<details") : html.index("</details>")]
    assert "<table>" in table
    assert "Period ending" in table
    assert table.count("<tr>") >= 2


def test_recommendation_page_shows_text_owners_status_and_timeline_with_evidence(demo, client):
    recommendation = Recommendation.objects.get(code="WRC-2024-1.6")
    html = page(client, recommendation.get_absolute_url())
    text = text_of(html)

    assert recommendation.text in text
    assert "The White House" in text
    assert "Current status" in text and "In progress" in text
    for theme in recommendation.themes.all():
        assert theme.name in text
    assert "Timeline of status changes" in text
    assert "July 26, 2016" in text
    change = recommendation.status_changes.get()
    assert change.rationale in text
    evidence = change.evidence.get()
    assert evidence.title in text
    assert evidence.excerpt[:60] in text


def test_recommendation_page_links_evidence_and_its_kept_copy(db, client):
    recommendation = RecommendationFactory()
    evidence = EvidenceFactory(url="https://news.example.org/story")
    record(recommendation, "in_progress", on=datetime.date(2024, 8, 1), evidence=[evidence])
    source = Source.objects.create(url=evidence.url, title="The story")
    version = keep_version(source, text="What the story said then.")

    html = page(client, recommendation.get_absolute_url())

    assert '<a href="https://news.example.org/story" rel="noopener noreferrer">' in html
    copy_url = reverse("public:source_version", args=[version.pk])
    assert f'<a href="{copy_url}">Kept copy of the source' in html
    kept = text_of(page(client, copy_url))
    assert "What the story said then." in kept
    assert evidence.title in kept


def test_agency_page_lists_what_it_leads_and_supports_by_status_with_progress(db, client):
    agency = AgencyFactory(name="Department of State", acronym="DOS")
    led = RecommendationFactory(title="Open processing centres", lead=agency)
    supported = RecommendationFactory(title="Fund local partners")
    Ownership.objects.create(recommendation=supported, agency=agency, role="supporting")
    record(led, "implemented", on=datetime.date(2024, 9, 1))

    html = page(client, agency.get_absolute_url())
    text = text_of(html)

    assert "Department of State" in text
    assert '<title id="progress-chart-title">Progress of DOS over time</title>' in html
    assert "Progress went from 0% to 50%" in text
    assert "Leads 1 recommendation" in text
    assert "supports 1." in text
    implemented, not_assessed = text.index("Implemented ("), text.index("Not yet assessed (")
    assert not_assessed < text.index("Fund local partners") < implemented
    assert implemented < text.index("Open processing centres")
    assert "50% implemented (weighted)" in text


def homeland_security():
    """DHS with USCIS and CBP under it, and OFO under CBP."""
    dhs = AgencyFactory(name="Department of Homeland Security", acronym="DHS")
    uscis = AgencyFactory(name="Citizenship and Immigration Services", acronym="USCIS", parent=dhs)
    cbp = AgencyFactory(name="Customs and Border Protection", acronym="CBP", parent=dhs)
    ofo = AgencyFactory(name="Office of Field Operations", acronym="OFO", parent=cbp)
    return dhs, uscis, cbp, ofo


def test_an_agency_page_counts_and_lists_what_its_sub_agencies_own(db, client):
    dhs, uscis, cbp, ofo = homeland_security()
    led = RecommendationFactory(title="Update the final dates", lead=uscis)
    record(led, "implemented", on=datetime.date(2024, 9, 1))
    shared = RecommendationFactory(title="Share the arrival data", lead=cbp)
    Ownership.objects.create(recommendation=shared, agency=uscis, role="supporting")
    supported = RecommendationFactory(title="Staff the ports of entry")
    Ownership.objects.create(recommendation=supported, agency=ofo, role="supporting")

    html = page(client, dhs.get_absolute_url())
    text = text_of(html)

    assert "Leads 2 recommendations; supports 1." in text  # the shared one once, as lead
    assert text.count("Share the arrival data") == 1
    assert "Staff the ports of entry Supporting · OFO" in text
    assert "33% implemented (weighted)" in text
    assert "Sub-agencies" in text
    assert f'<a href="{uscis.get_absolute_url()}">Citizenship and Immigration Services</a>' in html
    assert f'<a href="{cbp.get_absolute_url()}">Customs and Border Protection</a>' in html
    # Its sub-agency's page counts what is under it, not what is beside it.
    cbp_text = text_of(page(client, cbp.get_absolute_url()))
    assert "Leads 1 recommendation; supports 1." in cbp_text
    assert "Update the final dates" not in cbp_text


def test_an_agency_with_nothing_assigned_says_so_rather_than_0_percent(db, client):
    agency = AgencyFactory(name="Office of Quiet Work", acronym="OQW")
    RecommendationFactory(title="Someone else's", lead=AgencyFactory())

    text = text_of(page(client, agency.get_absolute_url()))

    assert "Nothing assigned" in text
    assert "0% implemented" not in text
    assert "Leads 0" not in text


def test_agencies_page_counts_sub_agencies_work_under_their_parent(db, client):
    _dhs, uscis, _cbp, ofo = homeland_security()
    RecommendationFactory(title="Update the final dates", lead=uscis)
    supported = RecommendationFactory(title="Staff the ports of entry")
    Ownership.objects.create(recommendation=supported, agency=ofo, role="supporting")

    text = text_of(page(client, "/agencies/"))

    assert "Department of Homeland Security (DHS) 2 recommendations" in text
    assert "Customs and Border Protection (CBP) 1 recommendation " in text


def test_agencies_page_queries_stay_constant_with_more_sub_agencies(
    db, client, django_assert_max_num_queries
):
    dhs, uscis, _cbp, _ofo = homeland_security()
    RecommendationFactory(lead=uscis)
    few = count_queries(client, "/agencies/")
    for _ in range(5):
        sub = AgencyFactory(parent=AgencyFactory(parent=dhs))
        RecommendationFactory(lead=sub)

    with django_assert_max_num_queries(few):
        text = text_of(page(client, "/agencies/"))
    assert "Department of Homeland Security (DHS) 6 recommendations" in text


def test_a_parent_shows_its_sub_recommendations_roll_up_not_a_contradiction(demo, client):
    url = "/documents/WRC-2024/recommendations/WRC-2024-1/"

    text = text_of(page(client, url))

    # Its 1.6 is in progress; nothing is recorded on it.
    assert "Current status In progress from its sub-recommendations" in text
    assert "1 of 6 sub-recommendations moving" in text
    assert "the recommendation is not started" not in text
    assert "its sub-recommendations show how far it has come" in text


def test_a_document_lists_a_parent_with_its_roll_up(demo, client):
    text = text_of(page(client, "/documents/WRC-2024/"))

    listed = text[text.index("WRC-2024-1 Continue to develop") : text.index("WRC-2024-1.1 ")]
    assert "Status In progress 1 of 6 sub-recommendations moving" in listed
    in_progress = text_of(page(client, "/documents/WRC-2024/?status=in_progress"))
    assert "WRC-2024-1 Continue to develop" in in_progress


def test_a_document_s_status_counts_match_what_its_filter_lists(demo, client):
    html = page(client, "/documents/WRC-2024/?status=in_progress")
    text = text_of(html)

    counted = int(re.search(r"In progress \((\d+)\)", text).group(1))
    assert html.count('<li class="recommendation') == counted
    assert "WRC-2024-1 Continue to develop" in text


def test_an_agency_lists_a_parent_it_leads_under_the_status_it_shows(demo, client):
    text = text_of(page(client, "/agencies/wh/"))

    # Not yet assessed comes first; its 1.6 is in progress, so it is too.
    parent = text.index("WRC-2024-1 Continue to develop")
    assert text.index("Not yet assessed (") < text.index("In progress (") < parent
    assert "In progress (2)" in text


def test_a_parent_recorded_implemented_shows_its_unfinished_children(db, client):
    parent = RecommendationFactory(code="REC-1", title="Open pathways")
    record(parent, "implemented", on=datetime.date(2024, 9, 1))
    done = RecommendationFactory(document=parent.document, code="REC-1.1", parent=parent)
    record(done, "implemented", on=datetime.date(2024, 9, 1))
    RecommendationFactory(document=parent.document, code="REC-1.2", parent=parent)

    text = text_of(page(client, parent.get_absolute_url()))

    assert "Current status Partially implemented from its sub-recommendations" in text
    assert "1 of 2 sub-recommendations moving" in text


def test_document_page_queries_stay_constant_with_more_parents(
    db, client, django_assert_max_num_queries
):
    document = DocumentFactory(code="DOC-1")
    parent = RecommendationFactory(document=document, code="DOC-1-1")
    RecommendationFactory(document=document, code="DOC-1-1.1", parent=parent)
    refresh_stale()  # the progress ledger's catch-up after new recommendations is a write
    few = count_queries(client, "/documents/DOC-1/")
    for n in range(2, 8):
        parent = RecommendationFactory(document=document, code=f"DOC-1-{n}")
        for m in range(1, 4):
            child = RecommendationFactory(document=document, code=f"DOC-1-{n}.{m}", parent=parent)
            record(child, "in_progress", on=datetime.date(2024, 9, 1))
    refresh_stale()

    with django_assert_max_num_queries(few):
        text = text_of(page(client, "/documents/DOC-1/"))
    assert text.count("3 of 3 sub-recommendations moving") == 6


def test_demo_dhs_counts_what_its_sub_agencies_own_as_the_api_does(demo, client):
    api = client.get("/api/v1/recommendations/", {"agency": "DHS"}).json()
    html = page(client, "/agencies/dhs/")
    text = text_of(html)

    assert api["count"] > 0
    counts = re.search(r"Leads (\d+) recommendations?; supports (\d+)", text).groups()
    led, supported = map(int, counts)
    assert led + supported == api["count"]
    assert "Nothing assigned" not in text
    assert 'href="/agencies/uscis/"' in html
    assert 'href="/agencies/cbp/"' in html
    feed = client.get("/agencies/dhs/feed/").content.decode()
    assert "<entry>" in feed


def test_every_demo_page_renders(demo, client):
    urls = ["/", "/search/?q=minors"]
    urls += [document.get_absolute_url() for document in Document.objects.all()]
    urls += [
        recommendation.get_absolute_url()
        for recommendation in Recommendation.objects.select_related("document")
    ]
    urls += [
        reverse("public:agency", args=[slug])
        for slug in set(Ownership.objects.values_list("agency__slug", flat=True))
    ]
    for url in urls:
        page(client, url)


class PageStructure(HTMLParser):
    """What accessibility and self-hosting checks need: headings, form fields and their
    labels, scripts and the addresses of stylesheets and images."""

    def __init__(self):
        super().__init__()
        self.tags, self.field_ids, self.label_fors, self.loaded = [], [], set(), []
        self.lang = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag in {"input", "select", "textarea"} and attrs.get("type") != "hidden":
            self.field_ids.append(attrs.get("id"))
        if tag == "label":
            self.label_fors.add(attrs.get("for"))
        if tag in {"img", "script"} and attrs.get("src"):
            self.loaded.append(attrs["src"])
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.loaded.append(attrs["href"])


def test_every_page_is_accessible_in_structure_and_self_hosted(demo, client):
    urls = ["/", "/agencies/", "/agencies/wh/", "/search/?q=minors", "/search/"]
    urls += ["/documents/WRC-2024/", "/documents/WRC-2024/recommendations/WRC-2024-1.6/"]
    for url in urls:
        structure = PageStructure()
        structure.feed(page(client, url))

        assert structure.lang == "en", url
        assert structure.tags.count("h1") == 1, url
        assert structure.tags.count("main") == 1, url
        assert "script" not in structure.tags, url
        assert all(field and field in structure.label_fors for field in structure.field_ids), url
        assert all(address.startswith("/") for address in structure.loaded), url


def test_every_public_page_is_cacheable_per_language(hostile, client):
    urls = [
        "/",
        "/agencies/",
        hostile["agency"].get_absolute_url(),
        "/documents/DOC-X/",
        hostile["recommendation"].get_absolute_url(),
        "/search/?q=title",
        f"/sources/versions/{hostile['version'].pk}/",
    ]
    for url in urls:
        response = client.get(url)
        assert response["Cache-Control"] == "public, max-age=60", url
        vary = {part.strip() for part in response["Vary"].split(",")}
        assert {"Accept-Language", "Cookie"} <= vary, url
        assert response["Content-Language"] == "en", url
        assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304, url


# Drafts and staff data


@pytest.fixture
def with_draft(db):
    agency = AgencyFactory(name="Draft Agency", acronym="DRA")
    document = DocumentFactory(code="DOC-A", title="A published document")
    published = RecommendationFactory(document=document, code="DOC-A-1", lead=agency)
    draft = RecommendationFactory(
        document=document,
        code="DOC-A-2",
        title="Secret draft wording",
        text="Secret draft text about zebras.",
        is_published=False,
        lead=agency,
    )
    draft_evidence = EvidenceFactory(title="Evidence only the draft cites", excerpt="zebras")
    record(draft, "implemented", on=datetime.date(2024, 8, 1), evidence=[draft_evidence])
    draft_only = DocumentFactory(code="DOC-B", title="A document still in draft")
    RecommendationFactory(document=draft_only, is_published=False)
    return {"agency": agency, "published": published, "draft": draft}


def test_drafts_never_appear_on_public_pages_or_in_counts(with_draft, client):
    agency, published = with_draft["agency"], with_draft["published"]
    for url in [
        "/",
        "/documents/DOC-A/",
        published.get_absolute_url(),
        agency.get_absolute_url(),
        "/search/?q=zebras",
        "/search/?q=draft",
    ]:
        text = text_of(page(client, url))
        assert "Secret draft" not in text, url
        assert "DOC-A-2" not in text, url
        assert "Evidence only the draft cites" not in text, url
        assert "A document still in draft" not in text, url

    home = text_of(page(client, "/"))
    assert "1 recommendation " in home
    assert "0% implemented" in home  # the draft's "implemented" does not count
    assert "Leads 1 recommendation" in text_of(page(client, agency.get_absolute_url()))


def test_draft_pages_are_not_found_even_for_staff(with_draft, client, admin_user):
    draft = with_draft["draft"]
    assert client.get(draft.get_absolute_url()).status_code == 404
    assert client.get("/documents/DOC-B/").status_code == 404
    client.force_login(admin_user)
    assert client.get(draft.get_absolute_url()).status_code == 404


def test_unknown_pages_are_not_found(db, client):
    response = client.get("/documents/NOPE/", HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 404
    assert "Página no encontrada" in response.content.decode()
    assert client.get("/documents/NOPE/recommendations/NOPE-1/").status_code == 404
    assert client.get("/agencies/nope/").status_code == 404
    assert client.get("/sources/versions/999/").status_code == 404


def test_pages_answer_get_and_head_only(db, client):
    assert client.post("/").status_code == 405
    assert client.head("/").status_code == 200


# Kept copies: only those cited by published evidence


def test_kept_copy_of_an_alert_accepted_as_evidence_is_public(db, client):
    recommendation = RecommendationFactory()
    source = Source.objects.create(url="https://agency.example.gov/page")
    older = keep_version(source, text="Before the change.")
    newer = keep_version(source, text="After the change.")
    evidence = EvidenceFactory(url="https://elsewhere.example.org/a")
    ChangeAlert.objects.create(
        source=source, version=newer, previous_version=older, evidence=evidence
    )
    record(recommendation, "partial", on=datetime.date(2024, 9, 1), evidence=[evidence])

    html = page(client, recommendation.get_absolute_url())

    assert reverse("public:source_version", args=[newer.pk]) in html
    assert "After the change." in page(client, f"/sources/versions/{newer.pk}/")
    assert client.get(f"/sources/versions/{older.pk}/").status_code == 404


def test_kept_copy_is_the_version_kept_when_the_evidence_was_recorded(db, client):
    recommendation = RecommendationFactory()
    source = Source.objects.create(url="https://agency.example.gov/linked")
    now = timezone.now()
    before = keep_version(source, fetched_at=now - datetime.timedelta(days=3))
    evidence = EvidenceFactory(url="https://another.example.org/")
    source.evidence.add(evidence)
    keep_version(source, fetched_at=now + datetime.timedelta(days=3))
    record(recommendation, "in_progress", on=datetime.date(2024, 8, 1), evidence=[evidence])

    html = page(client, recommendation.get_absolute_url())

    assert reverse("public:source_version", args=[before.pk]) in html
    assert html.count("Kept copy of the source") == 1


def test_kept_copies_of_draft_evidence_or_feeds_are_not_public(with_draft, client):
    draft_evidence = with_draft["draft"].evidence.get()
    page_source = Source.objects.create(url="https://private.example.org/")
    page_source.evidence.add(draft_evidence)
    draft_copy = keep_version(page_source)
    feed = Source.objects.create(url="https://feeds.example.org/rss", kind=Source.Kind.FEED)
    published_evidence = EvidenceFactory()
    with_draft["published"].evidence.add(published_evidence)
    feed.evidence.add(published_evidence)
    feed_copy = keep_version(feed)
    unlinked = keep_version(Source.objects.create(url="https://nobody.example.org/"))

    for version in (draft_copy, feed_copy, unlinked):
        assert client.get(f"/sources/versions/{version.pk}/").status_code == 404


# Hostile text


@pytest.fixture
def hostile(db):
    agency = AgencyFactory(name=f"Agency {SCRIPT}", acronym="EVIL")
    document = DocumentFactory(code="DOC-X", title=f"Document {ATTRIBUTE_BREAK}")
    recommendation = RecommendationFactory(
        document=document,
        code="DOC-X-1",
        section_title=f"Section {SCRIPT}",
        title=f"Title {ATTRIBUTE_BREAK}",
        text=f"Text {SCRIPT} and {ATTRIBUTE_BREAK}",
        lead=agency,
    )
    evidence = EvidenceFactory(
        title=f"Evidence {SCRIPT}",
        outlet=ATTRIBUTE_BREAK,
        excerpt=f"Quote {SCRIPT} {ATTRIBUTE_BREAK}",
        url="javascript:alert(1)",
    )
    record(
        recommendation,
        "in_progress",
        on=datetime.date(2024, 8, 1),
        evidence=[evidence],
        rationale=f"Because {SCRIPT}",
    )
    source = Source.objects.create(url="https://news.example.org/hostile")
    source.evidence.add(evidence)
    version = keep_version(source, text=f"Kept {SCRIPT} {ATTRIBUTE_BREAK}")
    return {"agency": agency, "recommendation": recommendation, "version": version}


def test_hostile_text_is_escaped_on_every_page(hostile, client):
    recommendation = hostile["recommendation"]
    urls = [
        "/",
        "/documents/DOC-X/",
        recommendation.get_absolute_url(),
        hostile["agency"].get_absolute_url(),
        "/agencies/",
        "/search/?q=evidence",
        "/search/?q=title",
        f"/search/?q={SCRIPT}",
        f"/sources/versions/{hostile['version'].pk}/",
    ]
    for url in urls:
        html = page(client, url)
        assert "<script" not in html, url
        assert "<img src=x" not in html, url  # the pages' own images are badges
        assert not re.search(r"<img(?! src=\"/badges/)", html), url
        assert "javascript:" not in html, url
    html = page(client, recommendation.get_absolute_url())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


# Constant queries


def test_document_page_queries_do_not_grow_with_recommendations(db, client):
    agency = AgencyFactory()
    small = DocumentFactory(code="SMALL")
    record(
        RecommendationFactory(document=small, lead=agency), "partial", on=datetime.date(2024, 8, 1)
    )
    large = DocumentFactory(code="LARGE")
    for index in range(12):
        rec = RecommendationFactory(
            document=large, section_title=f"Section {index % 3}", lead=AgencyFactory()
        )
        record(rec, "partial", on=datetime.date(2024, 8, 1), evidence=[EvidenceFactory()])
    refresh_stale()  # the progress ledger's catch-up after new recommendations is a write

    assert count_queries(client, "/documents/SMALL/") == count_queries(client, "/documents/LARGE/")


def test_recommendation_page_queries_do_not_grow_with_history(db, client):
    quiet = RecommendationFactory(lead=AgencyFactory())
    quiet_evidence = EvidenceFactory()
    keep_version(Source.objects.create(url=quiet_evidence.url))
    record(quiet, "in_progress", on=datetime.date(2024, 8, 1), evidence=[quiet_evidence])
    busy = RecommendationFactory(lead=AgencyFactory())
    for _ in range(3):
        Ownership.objects.create(recommendation=busy, agency=AgencyFactory(), role="supporting")
    for day in range(1, 6):
        evidence = [EvidenceFactory(), EvidenceFactory()]
        for item in evidence:
            source = Source.objects.create(url=item.url)
            keep_version(source)
        record(busy, "partial", on=datetime.date(2024, 8, day), evidence=evidence)
    busy.evidence.add(EvidenceFactory(), EvidenceFactory())
    RecommendationFactory(document=busy.document, parent=busy)

    quiet_url = quiet.get_absolute_url()
    busy_url = busy.get_absolute_url()
    assert count_queries(client, quiet_url) == count_queries(client, busy_url)


def test_home_agency_and_search_queries_do_not_grow_with_data(db, client):
    agency = AgencyFactory(slug="grows")
    first = RecommendationFactory(title="Needle one", lead=agency)
    record(
        first, "partial", on=datetime.date(2024, 8, 1), evidence=[EvidenceFactory(title="Needle")]
    )
    few = [
        count_queries(client, url)
        for url in ("/", "/agencies/", "/agencies/grows/", "/search/?q=needle")
    ]
    for _ in range(6):
        document = DocumentFactory()
        for _ in range(3):
            rec = RecommendationFactory(
                document=document, title="Needle more", lead=AgencyFactory()
            )
            Ownership.objects.create(recommendation=rec, agency=agency, role="supporting")
            record(
                rec,
                "partial",
                on=datetime.date(2024, 8, 1),
                evidence=[EvidenceFactory(title="Needle news")],
            )
    many = [
        count_queries(client, url)
        for url in ("/", "/agencies/", "/agencies/grows/", "/search/?q=needle")
    ]

    assert few == many


def test_kept_copy_page_queries_do_not_grow_with_citing_evidence(db, client):
    def cited_copy(citations):
        source = Source.objects.create(url=f"https://agency.example.gov/{citations}")
        version = keep_version(source, fetched_at=timezone.now() - datetime.timedelta(days=1))
        for _ in range(citations):
            evidence = EvidenceFactory()
            source.evidence.add(evidence)
            RecommendationFactory().evidence.add(evidence)
        return f"/sources/versions/{version.pk}/"

    assert count_queries(client, cited_copy(1)) == count_queries(client, cited_copy(6))


# Caching and conditional GET


def test_pages_carry_validators_and_answer_conditional_gets_with_304(demo, client):
    url = "/documents/WRC-2024/"
    response = client.get(url)

    assert response["Cache-Control"] == "public, max-age=60"
    assert {"Accept-Language", "Cookie"} <= {part.strip() for part in response["Vary"].split(",")}
    etag, last_modified = response["ETag"], response["Last-Modified"]
    assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304
    earlier = "Mon, 01 Jan 2024 00:00:00 GMT"
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=earlier).status_code == 200


def test_a_new_status_change_changes_the_validators(demo, client):
    recommendation = Recommendation.objects.get(code="WRC-2024-1.6")
    url = recommendation.get_absolute_url()
    etag = client.get(url)["ETag"]

    record(recommendation, "implemented", on=timezone.localdate())

    response = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert "Implemented" in text_of(response.content.decode())


def test_unpublishing_a_recommendation_is_not_answered_with_304(with_draft, client):
    url = "/documents/DOC-A/"
    published = with_draft["published"]
    RecommendationFactory(document=published.document, code="DOC-A-3", title="Soon a draft")
    last_modified = client.get(url)["Last-Modified"]

    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=5)):
        soon_a_draft = Recommendation.objects.get(code="DOC-A-3")
        soon_a_draft.is_published = False
        soon_a_draft.save()
        response = client.get(url, HTTP_IF_MODIFIED_SINCE=last_modified)

    assert response.status_code == 200
    assert "Soon a draft" not in response.content.decode()


def test_the_language_switcher_carries_no_per_visitor_token(demo, client):
    first, second = client.get("/"), client.get("/")

    assert first["ETag"] == second["ETag"]
    assert "csrfmiddlewaretoken" not in first.content.decode()


# Languages


def test_pages_follow_accept_language(demo, client):
    html = page(client, "/documents/WRC-2024/", HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9")

    assert '<html lang="es">' in html
    text = text_of(html)
    assert "Recomendaciones" in text
    assert "Agencia líder" in text
    assert "En curso" in text
    assert "Progress" not in text


def test_english_is_the_default(demo, client):
    html = page(client, "/", HTTP_ACCEPT_LANGUAGE="fr")

    assert '<html lang="en">' in html
    assert "Tracked documents" in html


def test_a_visitor_switches_language_with_the_public_switcher(demo):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/language/", {"language": "es", "next": "/documents/WRC-2024/"})

    assert response.status_code == 302
    assert response["Location"] == "/documents/WRC-2024/"
    html = page(client, "/documents/WRC-2024/", HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="es">' in html
    assert "Recomendaciones" in html


def test_django_set_language_also_switches(demo, client):
    client.post(reverse("set_language"), {"language": "es", "next": "/"})

    text = text_of(page(client, "/", HTTP_ACCEPT_LANGUAGE="en"))
    assert "Documentos" in text
    assert "Cambios de estado recientes" in text


def test_the_switcher_refuses_unsafe_redirects(db):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/language/", {"language": "es", "next": "https://evil.example/"})

    assert response["Location"] == "/"


# Search


def test_search_finds_recommendations_and_evidence(demo, client):
    text = text_of(page(client, "/search/?q=Central+American+Minors"))

    assert "WRC-2024-1.6" in text
    assert "DHS expands the Central American Minors program to more relatives" in text
    assert "recommendation" in text


def test_search_matches_every_word_in_any_field(db, client):
    RecommendationFactory(title="Open processing", text="in the region, with partners")
    RecommendationFactory(title="Open borders", text="nothing about it")
    evidence = EvidenceFactory(
        title="A report", outlet="Reuters", excerpt="processing centres open"
    )
    RecommendationFactory().evidence.add(evidence)

    text = text_of(page(client, "/search/?q=processing+REGION"))

    assert "Open processing" in text
    assert "Open borders" not in text
    assert "1 recommendation " in text
    assert "0 pieces of evidence" in text
    assert "A report" in text_of(page(client, "/search/?q=reuters+centres"))


@pytest.mark.parametrize(
    "query",
    ["", "   ", "%", "_", "%25%25", "\x00", "a\x00b", "'; DROP TABLE x; --", "ñandú", "x" * 5000],
)
def test_search_handles_empty_and_odd_queries(db, client, query):
    RecommendationFactory(title="Something ordinary")

    response = client.get("/search/", {"q": query})

    assert response.status_code == 200
    assert "Something ordinary" not in text_of(response.content.decode())


def test_empty_search_invites_a_query(db, client):
    text = text_of(page(client, "/search/"))

    assert "Type words from a recommendation" in text


def test_agencies_page_lists_owners_of_published_work_with_progress(with_draft, client):
    only_draft = AgencyFactory(name="Owns only a draft")
    Ownership.objects.create(
        recommendation=with_draft["draft"], agency=only_draft, role="supporting"
    )

    text = text_of(page(client, "/agencies/"))

    assert "Draft Agency" in text
    assert "1 recommendation " in text  # its draft is not counted
    assert "Owns only a draft" not in text
    assert "0% implemented (weighted)" in text


# Contrast (WCAG AA: 4.5:1 for text)

CSS = Path(__file__).resolve().parents[1] / "tracker" / "static" / "tracker" / "public.css"


def luminance(hex_colour):
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one, other):
    light, dark = sorted([luminance(one), luminance(other)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_status_badges_and_text_colours_meet_wcag_aa_contrast():
    css = CSS.read_text()
    variables = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", css))
    badges = re.findall(
        r"\.status-(\w+) \{ background: (#[0-9a-fA-F]{6}); color: (#[0-9a-fA-F]{6}); \}", css
    )

    assert {status for status, _bg, _fg in badges} == set(Recommendation.Status.values)
    for status, background, colour in badges:
        assert contrast(background, colour) >= 4.5, status
    for text, background in [
        ("ink", "paper"),
        ("muted", "paper"),
        ("muted", "wash"),
        ("accent", "paper"),
        ("accent", "wash"),
    ]:
        assert contrast(variables[text], variables[background]) >= 4.5, (text, background)
    assert contrast("#ffffff", "#102a43") >= 4.5  # the header


def test_admin_links_published_recommendations_to_their_public_page(with_draft, client, admin_user):
    client.force_login(admin_user)
    published, draft = with_draft["published"], with_draft["draft"]

    published_form = client.get(f"/admin/tracker/recommendation/{published.pk}/change/")
    draft_form = client.get(f"/admin/tracker/recommendation/{draft.pk}/change/")

    assert "View on site" in published_form.content.decode()
    assert "View on site" not in draft_form.content.decode()
    view_on_site = re.search(
        r'href="([^"]+)" class="viewsitelink"', published_form.content.decode()
    )
    assert view_on_site.group(1) == published.get_absolute_url()


def test_a_server_error_gets_a_plain_page(db, rf):
    from django.views.defaults import server_error

    response = server_error(rf.get("/"))

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_document_page_lists_one_status_on_request(db, client):
    document = DocumentFactory(code="DOC-F")
    done = RecommendationFactory(document=document, title="Already done")
    RecommendationFactory(document=document, title="Still waiting")
    record(done, "implemented", on=datetime.date(2024, 8, 1))

    implemented = text_of(page(client, "/documents/DOC-F/?status=implemented"))
    everything = text_of(page(client, "/documents/DOC-F/?status=nonsense"))

    assert "Already done" in implemented and "Still waiting" not in implemented
    assert "All (2)" in implemented and "Implemented (1)" in implemented
    assert "Already done" in everything and "Still waiting" in everything


# --- Context for visitors -------------------------------------------------------------------


def test_the_methodology_page_defines_every_status_and_its_weight(client, db):
    text = client.get(reverse("public:methodology")).content.decode()
    for status, weight in STATUS_WEIGHTS.items():
        assert f'<span class="badge status-{status}">' in text
        assert f"<td>{round(weight * 100)}%</td>" in text
    assert "No step toward the recommendation is on record" in text
    assert f'href="{reverse("public:methodology")}"' in text  # in the menu


def meta(text, name):
    found = re.search(rf'<meta (?:name|property)="{name}" content="([^"]*)"', text)
    return found and found.group(1)


def test_shared_links_preview_the_page_itself(client, db):
    document = DocumentFactory(code="WRC-2024", title="Migration Does Not Start at the Border",
                               summary="Five asks to the administration.")  # fmt: skip
    recommendation = RecommendationFactory(
        document=document, code="WRC-2024-1", title="Expand parole",
        text="USCIS should expand parole for families waiting in Central America.",
    )  # fmt: skip
    page = client.get(reverse("public:document", args=["WRC-2024"])).content.decode()
    assert meta(page, "og:title") == "Migration Does Not Start at the Border"
    assert (
        meta(page, "og:description")
        == meta(page, "description")
        == ("Five asks to the administration.")
    )
    assert meta(page, "og:url") == "http://testserver/documents/WRC-2024/"
    detail = client.get(recommendation.get_absolute_url()).content.decode()
    assert meta(detail, "og:title") == "WRC-2024-1: Expand parole"
    assert meta(detail, "og:description").startswith("USCIS should expand parole")
    home = client.get(reverse("public:home")).content.decode()
    assert meta(home, "og:description").startswith("Which recommendations governments acted on")


def test_badges_come_with_the_snippet_to_embed_them(client, db):
    recommendation = RecommendationFactory(code="DOC-1-1")
    document_badge = reverse("public:badge_document", args=[recommendation.document.code])
    page = client.get(recommendation.document.get_absolute_url()).content.decode()
    assert f'<img src="{document_badge}"' in page
    assert f"&lt;img src=&quot;http://testserver{document_badge}&quot;" in page or (
        f'&lt;img src="http://testserver{document_badge}"' in page
    )
    detail = client.get(recommendation.get_absolute_url()).content.decode()
    badge = reverse(
        "public:badge_recommendation", args=[recommendation.document.code, recommendation.code]
    )
    assert f'<img src="{badge}"' in detail and f"http://testserver{badge}" in detail
    assert client.get(badge).status_code == 200


def test_a_printed_document_page_says_as_of_when_and_gives_the_charts_figures(client, db):
    recommendation = RecommendationFactory()
    page = client.get(recommendation.document.get_absolute_url()).content.decode()
    assert '<p class="print-only">As of ' in page
    assert page.count("<caption>Progress and recommendations by status") == 2  # one to print


def test_a_long_document_is_listed_a_page_at_a_time_and_its_counts_stay_whole(client, db):
    document = DocumentFactory(code="LONG-1")
    for number in range(1, 251):
        RecommendationFactory(document=document, code=f"LONG-1-{number}", position=number)
    first = client.get(reverse("public:document", args=["LONG-1"])).content.decode()
    assert "Recommendations 1\u2013100 of 250" in first
    assert "LONG-1-100<" in first.replace("</span>", "<") and "LONG-1-101<" not in first
    assert "250 published recommendations" in first  # the progress counts all of them
    last = client.get(reverse("public:document", args=["LONG-1"]), {"page": 3}).content.decode()
    assert "Recommendations 201\u2013250 of 250" in last
    assert 'href="?page=2#recommendations-heading"' in last
    assert "LONG-1-250<" in last.replace("</span>", "<") and "LONG-1-1<" not in last


def test_a_document_page_costs_the_same_queries_whatever_its_length(
    client, db, django_assert_max_num_queries
):
    document = DocumentFactory(code="LONG-2")
    agency = AgencyFactory()
    for number in range(1, 11):
        RecommendationFactory(document=document, code=f"LONG-2-{number}", lead=agency)
    url = reverse("public:document", args=["LONG-2"])
    refresh_stale()  # the progress ledger's catch-up after new recommendations is a write
    with CaptureQueriesContext(connection) as short:
        client.get(url)
    for number in range(11, 301):
        RecommendationFactory(document=document, code=f"LONG-2-{number}", lead=agency)
    refresh_stale()
    with django_assert_max_num_queries(len(short.captured_queries)):
        response = client.get(url)
    assert len(response.content) < 150_000  # a page of 100, not 300
