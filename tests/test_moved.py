"""What moved: status changes in a range of days, from → to with their evidence, on the public
page (/moved/) and in the admin, filtered by document, agency (with its sub-agencies), theme
and status; drafts never reach the public."""

import datetime
import re

import pytest
import time_machine
from django.urls import reverse

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
    ThemeFactory,
)
from tests.support.pages import text_of
from tracker.models import Recommendation

Status = Recommendation.Status
pytestmark = pytest.mark.django_db
# The day the tests live on: the default range runs from 31 August to 30 September 2024.
TODAY = datetime.datetime(2024, 9, 30, 12, tzinfo=datetime.UTC)
MOVED = "/moved/"


@pytest.fixture(autouse=True)
def frozen_today():
    with time_machine.travel(TODAY, tick=False):
        yield


@pytest.fixture
def world(uscis, congress):
    """WRC-2024-1 (USCIS, a DHS sub-agency; Legal pathways) moved twice, WRC-2024-2 (Congress)
    once, a draft once, and HILL-2021-4 long ago."""
    dhs = AgencyFactory(name="Department of Homeland Security", acronym="DHS", slug="dhs")
    uscis.parent = dhs
    uscis.save()
    wrc = DocumentFactory(code="WRC-2024", title="Migration Does Not Start at the Border")
    hill = DocumentFactory(code="HILL-2021", title="Five steps")
    first = RecommendationFactory(
        document=wrc, code="WRC-2024-1", title="Open legal pathways", lead=uscis
    )
    first.themes.add(ThemeFactory(name="Legal pathways", slug="legal-pathways"))
    second = RecommendationFactory(
        document=wrc, code="WRC-2024-2", title="Fund shelters", lead=congress
    )
    draft = RecommendationFactory(
        document=wrc, code="WRC-2024-9", title="Secret plan", lead=uscis, is_published=False
    )
    old = RecommendationFactory(document=hill, code="HILL-2021-4", title="Open alternatives")
    portal = EvidenceFactory(title="USCIS opens a portal", url="https://news.example.org/portal")
    fees = EvidenceFactory(title="USCIS cuts its fees", outlet="AP")
    first.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 8, 1), evidence=[portal]
    )
    first.record_status(Status.PARTIAL, effective_on=datetime.date(2024, 9, 15), evidence=[fees])
    second.record_status(
        Status.STALLED, effective_on=datetime.date(2024, 9, 1), rationale="Funding lapsed."
    )
    draft.record_status(
        Status.IMPLEMENTED,
        effective_on=datetime.date(2024, 9, 10),
        evidence=[EvidenceFactory(title="Draft-only memo")],
    )
    old.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2021, 6, 1), rationale="Begun."
    )
    return {"dhs": dhs, "first": first, "second": second, "draft": draft, "old": old}


def moved(client, query=None, **headers):
    response = client.get(MOVED, query or {}, **headers)
    assert response.status_code == 200
    return text_of(response.content.decode())


def listed(client, **query):
    """The recommendation codes listed, in order (one per change)."""
    response = client.get(MOVED, query)
    assert response.status_code == 200
    return re.findall(r'<span class="code">([^<]+)</span>', response.content.decode())


def test_the_page_lists_the_last_30_days_from_and_to_with_evidence(client, world):
    text = moved(client)
    assert "2 status changes from Aug. 31, 2024 to Sept. 30, 2024" in text
    assert "WRC-2024-1 Open legal pathways" in text
    assert "In progress → Partially implemented" in text
    assert "USCIS cuts its fees (AP)" in text
    assert "No earlier status → Stalled" in text and "Funding lapsed." in text
    # Before the range, and drafts, are not listed.
    assert "HILL-2021-4" not in text and "USCIS opens a portal" not in text
    assert "WRC-2024-9" not in text and "Secret plan" not in text
    assert "Draft-only memo" not in text
    assert listed(client) == ["WRC-2024-1", "WRC-2024-2"]  # latest first


def test_the_evidence_links_to_its_source(client, world):
    html = client.get(MOVED, {"from": "2024-08-01"}).content.decode()
    assert '<a href="https://news.example.org/portal" rel="noopener noreferrer">' in html


@pytest.mark.parametrize(
    ("query", "codes"),
    [
        ({"from": "2024-08-01", "to": "2024-08-01"}, ["WRC-2024-1"]),  # both days included
        ({"from": "2024-08-02", "to": "2024-09-01"}, ["WRC-2024-2"]),
        ({"from": "2024-08-02", "to": "2024-08-31"}, []),
        ({"from": "2021-01-01", "document": "HILL-2021"}, ["HILL-2021-4"]),
        ({"from": "2021-01-01", "agency": "dhs"}, ["WRC-2024-1", "WRC-2024-1"]),
        ({"from": "2021-01-01", "agency": "uscis"}, ["WRC-2024-1", "WRC-2024-1"]),
        ({"from": "2021-01-01", "theme": "legal-pathways"}, ["WRC-2024-1", "WRC-2024-1"]),
        ({"from": "2021-01-01", "status": "in_progress"}, ["WRC-2024-1", "HILL-2021-4"]),
    ],
)
def test_the_list_filters_by_dates_document_agency_theme_and_status(client, world, query, codes):
    assert listed(client, **query) == codes


def test_an_empty_range_says_so(client, world):
    text = moved(client, {"from": "2024-08-02", "to": "2024-08-31"})
    assert "0 status changes from Aug. 2, 2024 to Aug. 31, 2024" in text
    assert "No status changed in these days. Widen the range or remove a filter." in text


def test_a_draft_only_document_is_as_unknown_as_a_missing_one(client, world):
    secret = DocumentFactory(code="SECRET-2024")
    RecommendationFactory(document=secret, code="SECRET-2024-1", is_published=False)
    for code in ("SECRET-2024", "NOPE-1"):
        text = moved(client, {"document": code})
        assert "Select a valid choice" in text
        assert "status change" not in text.split("Show changes")[-1]
    assert "SECRET-2024" not in moved(client)


def test_a_reversed_range_is_refused_with_a_reason(client, world):
    text = moved(client, {"from": "2024-09-30", "to": "2024-09-01"})
    assert "The start date must be on or before the end date." in text


def test_a_field_in_error_points_to_its_message(client, world):
    html = client.get(MOVED, {"from": "last week"}).content.decode()
    assert 'aria-describedby="id_from_error"' in html
    assert '<p class="form-error" id="id_from_error">Enter a valid date.</p>' in html


def test_the_form_labels_every_field(client, world):
    html = client.get(MOVED).content.decode()
    for name in ("from", "to", "document", "agency", "theme", "status"):
        assert f'<label for="id_{name}">' in html
    assert 'value="2024-08-31"' in html and 'value="2024-09-30"' in html


def test_long_lists_are_paginated_in_a_fixed_number_of_queries(
    client, world, django_assert_max_num_queries
):
    document = DocumentFactory(code="BIG-2024")
    for index in range(30):
        rec = RecommendationFactory(document=document, code=f"BIG-2024-{index}")
        rec.record_status(
            Status.IN_PROGRESS,
            effective_on=datetime.date(2024, 9, 1) + datetime.timedelta(days=index % 20),
            evidence=[EvidenceFactory(), EvidenceFactory()],
        )
    with django_assert_max_num_queries(7):
        first = client.get(MOVED, {"document": "BIG-2024"})
    text = text_of(first.content.decode())
    assert "30 status changes" in text
    assert len(listed(client, document="BIG-2024")) == 25
    assert "Page 1 of 2" in text and "Older changes" in text
    assert 'href="?document=BIG-2024&amp;page=2"' in first.content.decode()
    assert listed(client, document="BIG-2024", page=2) == [
        f"BIG-2024-{index}"
        for index in (2, 21, 1, 20, 0)  # latest first, the later record first
    ]


def test_the_navigation_and_the_document_and_agency_pages_link_to_it(client, world):
    assert f'href="{MOVED}"' in client.get("/").content.decode()
    document = client.get("/documents/WRC-2024/").content.decode()
    assert f'href="{MOVED}?document=WRC-2024"' in document
    assert f'href="{MOVED}?agency=dhs"' in client.get("/agencies/dhs/").content.decode()
    assert f'href="{MOVED}?agency=uscis"' in client.get("/agencies/uscis/").content.decode()


def test_the_page_reads_in_spanish(client, world):
    text = moved(client, HTTP_ACCEPT_LANGUAGE="es")
    assert "Qué cambió" in text
    assert "2 cambios de estado del 31 de agosto de 2024 al 30 de septiembre de 2024" in text


# -- The admin -----------------------------------------------------------------------------


def test_staff_see_drafts_moving_in_the_admin(client, admin_user, world):
    client.force_login(admin_user)
    changelist = client.get(reverse("admin:tracker_statuschange_changelist")).content.decode()
    url = reverse("admin:tracker_statuschange_moved")
    assert f'href="{url}"' in changelist
    response = client.get(url, {"document": "WRC-2024"})
    text = text_of(response.content.decode())
    assert response.status_code == 200
    assert "3 status changes from Aug. 31, 2024 to Sept. 30, 2024" in text
    assert "WRC-2024-9 Secret plan (draft)" in text and "Draft-only memo" in text
    assert "In progress → Partially implemented" in text


def test_the_admin_view_needs_the_view_permission(client, world):
    from tests.factories import UserFactory

    staff = UserFactory(username="nobody", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:tracker_statuschange_moved")).status_code == 403
