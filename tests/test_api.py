"""The REST API: its contract, who may read and write what, and progress over time."""

import csv
import datetime
import io

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
    ThemeFactory,
    UserFactory,
)
from tracker.api import serializers as api_serializers
from tracker.models import (
    Agency,
    Evidence,
    Ownership,
    Recommendation,
    Source,
    StatusChange,
    Theme,
)

Status = Recommendation.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def world(uscis, congress):
    """A document with a published parent and child, a draft, evidence and some history."""
    dhs = AgencyFactory(name="Department of Homeland Security", acronym="DHS")
    uscis.parent = dhs
    uscis.save()
    document = DocumentFactory(code="WRC-2024", published_on=datetime.date(2024, 7, 1))
    parent = RecommendationFactory(document=document, code="WRC-2024-1", lead=congress)
    child = RecommendationFactory(document=document, code="WRC-2024-1.1", parent=parent)
    Ownership.objects.create(recommendation=child, agency=uscis, role="lead")
    Ownership.objects.create(recommendation=child, agency=congress, role="supporting")
    child.themes.add(ThemeFactory(name="Legal pathways"))
    draft = RecommendationFactory(
        document=document, code="WRC-2024-9", is_published=False, text="Secret draft text."
    )
    Ownership.objects.create(recommendation=draft, agency=uscis, role="lead")
    draft.record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 9, 1), rationale="Draft news."
    )
    public_news = EvidenceFactory(title="USCIS updates its dates")
    child.record_status(
        Status.PARTIAL, effective_on=datetime.date(2024, 8, 15), evidence=[public_news]
    )
    EvidenceFactory(title="Draft-only evidence").recommendations.add(draft)
    return {"document": document, "parent": parent, "child": child, "draft": draft}


def url(name, *args):
    return reverse(f"api:{name}", args=args)


def test_a_parent_carries_its_sub_recommendations_roll_up(api, world):
    parent = api.get(url("recommendation-detail", world["parent"].pk)).json()
    listed = api.get(url("recommendation-list")).json()["results"]

    assert parent["status"] == "not_assessed"  # its own record: none
    assert parent["rollup"] == {
        "sub_recommendations": 1,
        "moving": 1,
        "implemented": 0,
        "status": "partial",
        "from_sub_recommendations": True,
    }
    assert {r["code"]: r["rollup"] for r in listed}["WRC-2024-1"] == parent["rollup"]
    assert {r["code"]: r["rollup"] for r in listed}["WRC-2024-1.1"] is None


def test_lists_are_paginated_with_the_contract_shape(api, world):
    body = api.get(url("recommendation-list")).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2


def test_a_recommendation_has_the_contract_fields(api, world):
    child = world["child"]
    body = api.get(url("recommendation-detail", child.pk)).json()
    assert body["id"] == child.pk
    assert body["code"] == "WRC-2024-1.1"
    assert body["document"] == world["document"].pk
    assert body["parent"] == world["parent"].pk
    assert body["title"] == child.title
    assert body["text"] == child.text
    assert body["status"] == "partial"
    assert body["progress_weight"] == 0.5
    assert body["latest_change"] == {"status": "partial", "effective_on": "2024-08-15"}
    assert body["themes"] == ["Legal pathways"]
    assert {(o["agency"]["acronym"], o["role"]) for o in body["owners"]} == {
        ("USCIS", "lead"),
        ("Congress", "supporting"),
    }
    assert set(body["owners"][0]["agency"]) == {"id", "name", "acronym"}
    assert "updated_at" in body
    parent = api.get(url("recommendation-detail", world["parent"].pk)).json()
    assert parent["parent"] is None and parent["latest_change"] is None


@pytest.mark.parametrize(
    ("query", "codes"),
    [
        ({"status": "partial"}, {"WRC-2024-1.1"}),
        ({"status": ["partial", "not_assessed"]}, {"WRC-2024-1", "WRC-2024-1.1"}),
        ({"agency": "USCIS"}, {"WRC-2024-1.1"}),
        ({"agency": "DHS"}, {"WRC-2024-1.1"}),  # an agency includes its sub-agencies
        ({"agency": "Congress", "role": "lead"}, {"WRC-2024-1"}),
        ({"agency": "Congress", "role": "supporting"}, {"WRC-2024-1.1"}),
        ({"theme": "legal-pathways"}, {"WRC-2024-1.1"}),
        ({"search": "1.1"}, {"WRC-2024-1.1"}),
        ({"changed_since": "2999-01-01T00:00:00Z"}, set()),
    ],
)
def test_recommendations_filter_by_the_contract_parameters(api, world, query, codes):
    body = api.get(url("recommendation-list"), query).json()
    assert {item["code"] for item in body["results"]} == codes


def test_the_agency_filter_takes_an_id_too(api, world, uscis):
    body = api.get(url("recommendation-list"), {"agency": uscis.pk}).json()
    assert [item["code"] for item in body["results"]] == ["WRC-2024-1.1"]


def test_a_malformed_filter_is_a_clear_400(api, world):
    response = api.get(url("recommendation-list"), {"status": "done"})
    assert response.status_code == 400
    assert "status" in response.json()


def test_drafts_never_reach_anonymous_clients(api, world):
    draft = world["draft"]
    assert api.get(url("recommendation-detail", draft.pk)).status_code == 404
    listed = api.get(url("recommendation-list"), {"page_size": 200}).json()
    assert draft.code not in {item["code"] for item in listed["results"]}
    changes = api.get(url("statuschange-list")).json()
    assert {item["recommendation"] for item in changes["results"]} == {world["child"].pk}
    evidence = api.get(url("evidence-list")).json()
    assert [item["title"] for item in evidence["results"]] == ["USCIS updates its dates"]
    documents = api.get(url("document-list")).json()["results"]
    assert documents[0]["counts"]["implemented"] == 0
    assert sum(documents[0]["counts"].values()) == 2
    progress = api.get(url("progress"), {"interval": "month", "from": "2024-07-01"}).json()
    assert all(point["counts"]["implemented"] == 0 for point in progress["series"])


def test_staff_see_drafts(api, world, admin_user):
    api.force_authenticate(admin_user)
    body = api.get(url("recommendation-list")).json()
    assert body["count"] == 3


@pytest.mark.parametrize(
    ("who", "expected"),
    [("anonymous", 403), ("viewer", 403), ("editor", 201), ("admin_user", 201)],
)
def test_who_may_record_a_status_change(api, world, request, who, expected):
    if who != "anonymous":
        api.force_authenticate(request.getfixturevalue(who))
    child = world["child"]
    response = api.post(
        url("recommendation-record-status", child.pk),
        {"status": "implemented", "effective_on": "2024-10-01", "rationale": "Rule final."},
        format="json",
    )
    assert response.status_code == expected
    child.refresh_from_db()
    assert child.status == ("implemented" if expected == 201 else "partial")


def test_the_api_keeps_the_evidence_or_rationale_rule(api, world, editor):
    api.force_authenticate(editor)
    response = api.post(
        url("recommendation-record-status", world["child"].pk),
        {"status": "implemented", "effective_on": "2024-10-01"},
        format="json",
    )
    assert response.status_code == 400
    assert "evidence or a rationale" in str(response.json())
    assert world["child"].status_changes.count() == 1


def test_history_cannot_be_written_directly(api, world, admin_user):
    api.force_authenticate(admin_user)
    change = world["child"].status_changes.get()
    assert api.post(url("statuschange-list"), {}).status_code == 405
    assert api.delete(url("statuschange-detail", change.pk)).status_code == 405
    assert StatusChange.objects.filter(pk=change.pk).exists()


@pytest.mark.parametrize(
    ("who", "expected"),
    # The same model permissions as in the admin: the editor may change recommendations.
    [("anonymous", 403), ("viewer", 403), ("editor", 200), ("admin_user", 200)],
)
def test_writes_need_staff_with_model_permissions(api, world, request, who, expected):
    if who != "anonymous":
        api.force_authenticate(request.getfixturevalue(who))
    response = api.patch(
        url("recommendation-detail", world["child"].pk), {"title": "Renamed"}, format="json"
    )
    assert response.status_code == expected
    world["child"].refresh_from_db()
    assert (world["child"].title == "Renamed") == (expected == 200)


def test_token_authentication_works(api, world, admin_user):
    token = Token.objects.create(user=admin_user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get(url("recommendation-list")).json()["count"] == 3


@pytest.mark.parametrize("name", ["source-list", "sourceversion-list", "changealert-list"])
def test_monitoring_data_is_for_staff_only(api, world, viewer, admin_user, name):
    Source.objects.create(url="https://www.uscis.gov/news")
    assert api.get(url(name)).status_code == 403
    api.force_authenticate(admin_user)
    assert api.get(url(name)).status_code == 200


def test_list_queries_do_not_grow_with_the_page(
    api, world, settings, django_assert_max_num_queries
):
    settings.TRACKER_CACHE_RESPONSES = False  # count the queries of a page actually built
    path = url("recommendation-list")
    api.get(path, {"page_size": 2})
    with django_assert_max_num_queries(10) as small:
        api.get(path, {"page_size": 2})
    document = world["document"]
    for index in range(40):
        rec = RecommendationFactory(document=document, code=f"WRC-2024-5.{index}")
        Ownership.objects.create(recommendation=rec, agency=AgencyFactory(), role="lead")
        rec.themes.add(ThemeFactory(name=f"Theme {index}"))
    with django_assert_max_num_queries(len(small.captured_queries)):
        body = api.get(path, {"page_size": 40}).json()
    assert len(body["results"]) == 40


@pytest.mark.parametrize("asker", ["public", "staff"])
@pytest.mark.parametrize("language", ["en", "es"])
def test_a_recommendation_reads_as_drf_field_by_field_would_give_it(
    api, world, draft_family, uscis, admin_user, monkeypatch, asker, language
):
    """RecommendationSerializer builds its rows directly; every list and detail row here is
    also built by DRF's generic path and must match it, types and key order included."""
    child, parent = world["child"], world["parent"]
    child.title_es, child.note_es = "Abrir vías legales", "Solo en español."
    child.save()
    uscis.name_es = "Servicio de Ciudadanía e Inmigración"
    uscis.save()
    # Themes sort by name in the reader's language: these two swap places in Spanish.
    Theme.objects.filter(name="Legal pathways").update(name_es="Vías legales")
    child.themes.add(
        ThemeFactory(name="Asylum", name_es="Zonas de asilo"), ThemeFactory(name="Detention")
    )
    parent.last_reviewed_on = datetime.date(2024, 10, 2)
    parent.save()
    early = RecommendationFactory(document=world["document"], code="WRC-2024-3", is_priority=True)
    early.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2023, 5, 1), rationale="Before the report."
    )
    if asker == "staff":
        api.force_authenticate(admin_user)
    generic_representation = serializers.ModelSerializer.to_representation
    direct_representation = api_serializers.RecommendationSerializer.to_representation
    compared = []

    def both(serializer, recommendation):
        direct = direct_representation(serializer, recommendation)
        generic = generic_representation(serializer, recommendation)
        if serializer.hides_parent_of(recommendation):
            generic["parent"] = None
        assert direct == generic
        assert JSONRenderer().render(direct) == JSONRenderer().render(generic)
        compared.append(recommendation.code)
        return direct

    monkeypatch.setattr(api_serializers.RecommendationSerializer, "to_representation", both)
    listed = api.get(url("recommendation-list"), {"lang": language, "page_size": 100}).json()
    for pk in (child.pk, draft_family["orphan"].pk):
        api.get(url("recommendation-detail", pk), {"lang": language})

    assert sorted(compared) == sorted([row["code"] for row in listed["results"]] + [
        "WRC-2024-1.1", "WRC-2024-8.1"
    ])  # fmt: skip
    rows = {row["code"]: row for row in listed["results"]}
    staff = asker == "staff"
    assert rows["WRC-2024-8.1"]["parent"] == (draft_family["draft_parent"].pk if staff else None)
    assert ("WRC-2024-9" in rows) == staff
    assert rows["WRC-2024-1"]["latest_change"] is None
    assert rows["WRC-2024-3"]["status_since"] == "2024-07-01"  # the document's publication
    expected_languages = {"title": "es", "text": "en", "note": "es"}
    if language == "en":
        expected_languages = {"title": "en", "text": "en", "note": "es"}
    assert rows["WRC-2024-1.1"]["languages"] == expected_languages
    themes = [theme for theme in rows["WRC-2024-1.1"]["themes"] if theme != "Detention"]
    assert themes == (
        ["Asylum", "Legal pathways"] if language == "en" else ["Vías legales", "Zonas de asilo"]
    )


def test_agencies_report_counts_by_status(api, world, uscis):
    body = api.get(url("agency-detail", uscis.pk)).json()
    assert body["acronym"] == "USCIS"
    assert body["counts"]["partial"] == 1
    assert body["counts"]["implemented"] == 0  # the draft is not counted for the public


def test_the_progress_series_is_reconstructed_from_history(api, world):
    response = api.get(
        url("progress"),
        {
            "interval": "month",
            "from": "2024-07-01",
            "to": "2024-10-31",
            "document": world["document"].pk,
        },
    )
    assert response.status_code == 200
    series = response.json()["series"]
    assert [point["period_end"] for point in series] == [
        "2024-07-31",
        "2024-08-31",
        "2024-09-30",
        "2024-10-31",
    ]
    assert series[0]["counts"]["partial"] == 0 and series[0]["progress"] == 0
    assert series[1]["counts"] == {
        "not_assessed": 1,
        "not_started": 0,
        "in_progress": 0,
        "partial": 1,
        "implemented": 0,
        "stalled": 0,
        "reversed": 0,
    }
    assert series[1]["progress"] == 0.5  # the parent is as far as its only child


@pytest.mark.parametrize(
    "query",
    [
        {"interval": "fortnight"},
        {"from": "2024-13-01"},
        {"from": "2024-10-01", "to": "2024-01-01"},
        {"interval": "day", "from": "1900-01-01", "to": "2024-01-01"},
    ],
)
def test_a_malformed_progress_query_is_a_400(api, world, query):
    response = api.get(url("progress"), query)
    assert response.status_code == 400
    assert response.json()


def test_the_schema_and_its_docs_are_served(api):
    schema = api.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/progress/" in paths
    assert "/api/v1/recommendations/{id}/record_status/" in paths
    parameters = {p["name"] for p in paths["/api/v1/recommendations/"]["get"]["parameters"]}
    assert {"status", "document", "agency", "theme", "changed_since", "search"} <= parameters
    assert api.get(reverse("api-docs")).status_code == 200


def test_a_conditional_get_costs_no_body(api, world):
    path = url("recommendation-detail", world["child"].pk)
    first = api.get(path)
    assert first["ETag"]
    again = api.get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert not again.content


def test_anonymous_clients_are_throttled(api, world, settings):
    settings.TRACKER_API_ANON_RATE = "3/minute"
    with time_machine.travel(
        datetime.datetime(2025, 1, 6, 9, 0, 15, tzinfo=datetime.UTC), tick=False
    ) as now:
        statuses = [api.get(url("document-list")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert api.get(url("document-list"))["Retry-After"] == "45"
        now.shift(datetime.timedelta(seconds=45))  # the next minute
        assert api.get(url("document-list")).status_code == 200


# The throttles below count inside one minute that does not turn over mid-test.
ONE_MINUTE = datetime.datetime(2025, 1, 6, 9, 0, 15, tzinfo=datetime.UTC)


def test_made_up_forwarded_addresses_do_not_escape_the_throttle(api, world, settings):
    settings.TRACKER_API_ANON_RATE = "5/minute"
    path = url("document-list")
    with time_machine.travel(ONE_MINUTE, tick=False):
        statuses = [
            api.get(path, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(12)
        ]
    assert statuses == [200] * 5 + [429] * 7


def test_behind_a_trusted_proxy_the_client_is_the_address_it_forwarded(api, world, settings):
    settings.TRACKER_API_ANON_RATE = "5/minute"
    settings.TRACKER_TRUSTED_PROXIES = 1
    path = url("document-list")

    def get(forwarded):  # the proxy connects from 127.0.0.1 and appends the client's address
        return api.get(path, HTTP_X_FORWARDED_FOR=forwarded).status_code

    with time_machine.travel(ONE_MINUTE, tick=False):
        # Entries the client wrote before the proxy's own change nothing.
        statuses = [get(f"198.51.100.{n}, 203.0.113.7") for n in range(6)]
        assert statuses == [200] * 5 + [429]
        assert get("203.0.113.8") == 200  # someone else behind the same proxy


def test_signed_in_users_who_are_not_staff_have_a_rate_of_their_own(world, settings):
    settings.TRACKER_API_USER_RATE = "3/minute"
    settings.TRACKER_API_ANON_RATE = "100/minute"
    path = url("document-list")
    by_token = APIClient()
    token = Token.objects.create(user=UserFactory(username="script")).key
    by_token.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    by_session = APIClient()
    by_session.force_login(UserFactory(username="reader"))
    staff = APIClient()
    staff.force_login(UserFactory(username="staff", is_staff=True))
    with time_machine.travel(ONE_MINUTE, tick=False):
        for client in (by_token, by_session):  # each account counts on its own
            statuses = [client.get(path).status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
        assert by_token.get(path)["Retry-After"] == "45"
        assert {staff.get(path).status_code for _ in range(10)} == {200}
        assert APIClient().get(path).status_code == 200  # anonymous, from the same address


def test_the_export_is_the_importer_csv_of_the_filtered_list(api, world):
    response = api.get(url("recommendation-export"), {"status": "partial"})
    assert response["Content-Type"] == "text/csv"
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("code,parent_code,section,title,text")
    assert [line.split(",")[0] for line in lines[1:]] == ["WRC-2024-1.1"]
    everything = api.get(url("recommendation-export")).content.decode()
    assert "WRC-2024-9" not in everything  # drafts stay private


def test_the_export_never_hands_a_spreadsheet_a_formula(api, world):
    child = world["child"]
    child.title = '=HYPERLINK("http://example.org")'
    child.note = "@SUM(1+1)"
    child.save()
    rows = list(csv.reader(io.StringIO(api.get(url("recommendation-export")).content.decode())))
    exported = next(row for row in rows if row[0] == child.code)
    assert exported[3] == '\'=HYPERLINK("http://example.org")'
    assert exported[5] == "'@SUM(1+1)"


def test_an_agency_scorecard_counts_roles_and_time_to_implementation(api, world, uscis):
    child = world["child"]
    child.record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 10, 1), rationale="Rule final."
    )
    card = api.get(url("agency-scorecard", uscis.pk)).json()
    assert card["agency"]["acronym"] == "USCIS"
    assert card["lead"]["implemented"] == 1
    assert sum(card["lead"].values()) == 1  # the draft it leads is not public
    assert card["implemented_count"] == 1
    assert (
        card["median_days_to_implementation"]
        == (datetime.date(2024, 10, 1) - datetime.date(2024, 7, 1)).days
    )
    cards = api.get(url("agency-scorecards")).json()
    # DHS, through USCIS under it.
    assert {card["agency"]["acronym"] for card in cards} == {"USCIS", "DHS", "Congress"}
    congress = next(card for card in cards if card["agency"]["acronym"] == "Congress")
    # It leads WRC-2024-1, shown implemented by its only public sub-recommendation.
    assert congress["lead"]["implemented"] == 1 and congress["supporting"]["implemented"] == 1


def test_the_implementation_curve_compares_documents_by_age(api, world):
    world["child"].record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 9, 10), rationale="Rule final."
    )
    older = DocumentFactory(code="HILL-2021", published_on=datetime.date(2021, 3, 24))
    RecommendationFactory(document=older, code="HILL-2021-1").record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2021, 4, 1), rationale="Done."
    )
    curve = api.get(url("implementation-curve"), {"months": 3}).json()["curve"]
    assert [point["months"] for point in curve] == [0, 1, 2, 3]
    assert curve[0] == {"months": 0, "eligible": 3, "implemented": 0, "share": 0.0}
    assert curve[1]["implemented"] == 1  # the op-ed's step, a week after publication
    assert curve[3]["implemented"] == 2 and curve[3]["share"] == pytest.approx(2 / 3, abs=1e-4)
    assert api.get(url("implementation-curve"), {"months": -1}).status_code == 400


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("recommendation-list", {"document": "9" * 30}),
        ("evidence-list", {"recommendations": "9" * 30}),
        ("progress", {"document": "9" * 30}),
    ],
)
def test_numbers_beyond_the_database_range_are_a_400(api, world, name, query):
    response = api.get(url(name), query)
    assert response.status_code == 400


def test_an_id_beyond_the_database_range_is_not_a_server_error(api, world):
    assert api.get(url("recommendation-detail", "9" * 30)).status_code in {400, 404}


def test_a_recommendation_carries_last_modified_and_answers_if_modified_since(
    api, world, time_machine
):
    path = url("recommendation-detail", world["child"].pk)
    first = api.get(path)
    assert api.get(path, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304
    time_machine.move_to(timezone.now() + datetime.timedelta(minutes=5))
    world["child"].record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 10, 1), rationale="Rule final."
    )
    assert api.get(path, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 200
    # Lists change in ways no timestamp shows (a recommendation unpublished): ETag only.
    assert "Last-Modified" not in api.get(url("recommendation-list"))


def test_documents_agencies_history_and_evidence_have_their_fields(api, world, uscis):
    document = api.get(url("document-detail", world["document"].pk)).json()
    assert {
        "id",
        "code",
        "title",
        "publisher",
        "kind",
        "published_on",
        "counts",
        "progress",
    } <= set(document)
    assert document["progress"] == 0.5  # its one published root is as far as its child
    agency = api.get(url("agency-detail", uscis.pk)).json()
    assert {"id", "name", "acronym", "parent", "aliases", "counts"} <= set(agency)
    change = api.get(url("statuschange-list")).json()["results"][0]
    assert change["recommendation"] == world["child"].pk
    assert change["status"] == "partial" and change["effective_on"] == "2024-08-15"
    assert len(change["evidence"]) == 1
    assert "recorded_by" not in change  # who on the staff recorded it stays internal
    evidence = api.get(url("evidence-list")).json()["results"][0]
    assert evidence["recommendations"] == [world["child"].pk]
    assert {"url", "title", "outlet", "published_on", "kind", "effect", "excerpt"} <= set(evidence)


@pytest.mark.parametrize(
    ("who", "expected"), [("anonymous", 403), ("viewer", 403), ("editor", 201)]
)
def test_who_may_add_evidence(api, world, request, who, expected):
    if who != "anonymous":
        api.force_authenticate(request.getfixturevalue(who))
    response = api.post(
        url("evidence-list"),
        {
            "title": "Final rule published",
            "url": "https://www.federalregister.gov/rule",
            "kind": "final_rule",
            "effect": "advances",
            "recommendations": [world["child"].pk],
        },
        format="json",
    )
    assert response.status_code == expected
    assert Evidence.objects.filter(title="Final rule published").exists() == (expected == 201)


@pytest.fixture
def draft_family(world):
    """A published child under a draft parent, and a draft child under a published parent."""
    document = world["document"]
    draft_parent = RecommendationFactory(document=document, code="WRC-2024-8", is_published=False)
    orphan = RecommendationFactory(document=document, code="WRC-2024-8.1", parent=draft_parent)
    hidden_child = RecommendationFactory(
        document=document, code="WRC-2024-1.9", parent=world["parent"], is_published=False
    )
    hidden_child.record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 9, 1), rationale="Draft news."
    )
    return {"draft_parent": draft_parent, "orphan": orphan, "hidden_child": hidden_child}


@pytest.fixture(params=["anonymous", "logged_in_non_staff"])
def public_client(api, request, db):
    if request.param == "logged_in_non_staff":
        from tests.factories import UserFactory

        api.force_authenticate(UserFactory(username="reader", is_staff=False))
    return api


def test_a_draft_parent_stays_private(public_client, world, draft_family):
    orphan, draft_parent = draft_family["orphan"], draft_family["draft_parent"]
    body = public_client.get(url("recommendation-detail", orphan.pk)).json()
    assert body["parent"] is None
    page = public_client.get(url("recommendation-list"), {"page_size": 100}).json()
    assert [row["parent"] for row in page["results"] if row["id"] == orphan.pk] == [None]
    export = public_client.get(url("recommendation-export")).content.decode()
    assert "WRC-2024-8.1," in export and "WRC-2024-8," not in export
    listed = public_client.get(url("recommendation-list"), {"parent": draft_parent.pk})
    missing = public_client.get(url("recommendation-list"), {"parent": 10**9})
    assert listed.status_code == missing.status_code == 400  # a draft id reads as unknown


@pytest.mark.parametrize(
    ("name", "param"),
    [("statuschange-list", "recommendation"), ("evidence-list", "recommendations")],
)
def test_filters_cannot_name_a_draft(public_client, world, name, param):
    response = public_client.get(url(name), {param: world["draft"].pk})
    assert response.status_code == 400
    assert "Draft" not in response.content.decode()


def test_public_progress_does_not_count_draft_children(public_client, world, draft_family):
    document = world["document"]
    series = public_client.get(
        url("progress"), {"document": document.pk, "from": "2024-07-01", "to": "2024-10-31"}
    ).json()["series"]
    documents = public_client.get(url("document-detail", document.pk)).json()
    # Roots: the parent (as far as its one public child, partial) and the orphan (not started).
    assert series[-1]["progress"] == documents["progress"] == 0.25
    assert series[-1]["counts"]["implemented"] == 0


def test_an_agency_scorecard_and_counts_agree_with_its_agency_filter(public_client, world):
    dhs = Agency.objects.get(acronym="DHS")
    filtered = public_client.get(url("recommendation-list"), {"agency": "DHS"}).json()

    card = public_client.get(url("agency-scorecard", dhs.pk)).json()
    agency = public_client.get(url("agency-detail", dhs.pk)).json()

    assert [r["code"] for r in filtered["results"]] == ["WRC-2024-1.1"]
    assert card["lead"]["partial"] == 1  # through USCIS
    assert sum(card["lead"].values()) + sum(card["supporting"].values()) == 1
    assert card["progress"] == 0.5
    assert agency["counts"]["partial"] == 1
    assert agency["progress"] == 0.5


def test_a_scorecard_counts_a_parent_under_the_status_it_shows(public_client, world, congress):
    card = public_client.get(url("agency-scorecard", congress.pk)).json()

    # It leads WRC-2024-1, whose only public sub-recommendation is partly done.
    assert card["lead"]["partial"] == 1
    assert card["lead"]["not_started"] == 0


def test_a_scorecard_with_nothing_assigned_has_no_progress(public_client, world):
    idle = AgencyFactory(name="Office of Quiet Work", acronym="OQW")

    card = public_client.get(url("agency-scorecard", idle.pk)).json()

    assert card["progress"] is None
    assert sum(card["lead"].values()) == 0


def test_scorecards_list_only_agencies_owning_public_work(public_client, world):
    only_drafts = AgencyFactory(name="Drafts only", acronym="DRO")
    Ownership.objects.create(recommendation=world["draft"], agency=only_drafts, role="supporting")
    cards = public_client.get(url("agency-scorecards")).json()
    assert "DRO" not in {card["agency"]["acronym"] for card in cards}


def test_the_api_refuses_parent_cycles_and_moves_between_documents(api, world, admin_user):
    api.force_authenticate(admin_user)
    parent = world["parent"]
    cycle = api.patch(
        url("recommendation-detail", parent.pk), {"parent": world["child"].pk}, format="json"
    )
    assert cycle.status_code == 400 and "parent" in cycle.json()
    move = api.patch(
        url("recommendation-detail", world["child"].pk),
        {"document": DocumentFactory().pk},
        format="json",
    )
    assert move.status_code == 400 and "document" in move.json()
    assert api.get(url("document-list")).status_code == 200


def test_deleting_what_history_refers_to_is_a_409(api, world, admin_user):
    api.force_authenticate(admin_user)
    response = api.delete(url("recommendation-detail", world["child"].pk))
    assert response.status_code == 409
    assert Recommendation.objects.filter(pk=world["child"].pk).exists()


def test_documents_and_agencies_can_be_written_through_the_api(api, world, admin_user):
    api.force_authenticate(admin_user)
    created = api.post(
        url("document-list"),
        {
            "code": "ORG-2025",
            "title": "New report",
            "publisher": world["document"].publisher.name,
            "kind": "report",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    agency = api.post(
        url("agency-list"),
        {"name": "Department of Labor", "acronym": "DOL", "slug": "dol", "aliases": ["DoL"]},
        format="json",
    )
    assert agency.status_code == 201, agency.json()
    assert agency.json()["aliases"] == ["DoL"]


def test_recording_through_the_api_needs_change_rights_too(api, world):
    from django.contrib.auth.models import Permission

    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="add_statuschange"))
    api.force_authenticate(clerk)
    response = api.post(
        url("recommendation-record-status", world["child"].pk),
        {"status": "implemented", "effective_on": "2024-10-01", "rationale": "Rule final."},
        format="json",
    )
    assert response.status_code == 403


def test_an_agency_named_by_a_non_ascii_digit_is_just_unknown(api, world):
    response = api.get(url("recommendation-list"), {"agency": "\u00b3"})
    assert response.status_code == 200 and response.json()["count"] == 0


# -- What moved: honest date filters, documents by code (issue 15) ------------------------

# When the demo is loaded in these tests: every status change is recorded at this moment.
DEMO_LOADED_AT = datetime.datetime(2026, 11, 2, 9, 30, tzinfo=datetime.UTC)


@pytest.fixture
def demo(db):
    """The demo: HILL-2021-4 moved in progress (2016-01-13), partially implemented
    (2016-07-26) and stalled (2019-03-12); WRC-2024-1.6 in progress (2016-07-26); the other
    23 of the 25 recommendations have no status change."""
    from tracker.demo import load_demo

    with time_machine.travel(DEMO_LOADED_AT, tick=False):
        load_demo()


def codes_of(api, query):
    response = api.get(url("recommendation-list"), {**query, "page_size": 100})
    assert response.status_code == 200, response.json()
    return {item["code"] for item in response.json()["results"]}


@pytest.mark.parametrize(
    ("query", "codes"),
    [
        # changed_since: a status change recorded at or after the moment (both included).
        ({"changed_since": "2026-11-02T09:30:00Z"}, {"HILL-2021-4", "WRC-2024-1.6"}),
        ({"changed_since": "2026-11-02T09:30:01Z"}, set()),
        # status_changed_after/before: the day the current status took effect, included.
        ({"status_changed_after": "2016-07-26"}, {"HILL-2021-4", "WRC-2024-1.6"}),
        ({"status_changed_after": "2016-07-27"}, {"HILL-2021-4"}),
        ({"status_changed_after": "2019-03-13"}, set()),
        ({"status_changed_before": "2016-07-26"}, {"WRC-2024-1.6"}),
        ({"status_changed_before": "2016-07-25"}, set()),
        ({"status_changed_before": "2019-03-12"}, {"HILL-2021-4", "WRC-2024-1.6"}),
        (
            {"status_changed_after": "2016-01-01", "status_changed_before": "2018-12-31"},
            {"WRC-2024-1.6"},
        ),
        ({"document": "HILL-2021", "status_changed_after": "2016-01-01"}, {"HILL-2021-4"}),
    ],
)
def test_the_demo_answers_the_status_date_filters_exactly(api, demo, query, codes):
    assert codes_of(api, query) == codes


def test_an_import_alone_is_an_update_not_a_status_change(api, demo):
    since = {"changed_since": "2026-11-01T00:00:00Z"}
    assert codes_of(api, since) == {"HILL-2021-4", "WRC-2024-1.6"}
    updated = api.get(url("recommendation-list"), {"updated_since": "2026-11-01T00:00:00Z"})
    assert updated.json()["count"] == 25


def test_a_document_is_named_by_its_code_or_its_id(api, demo):
    from tracker.models import Document

    wrc = Document.objects.get(code="WRC-2024")
    by_code = api.get(url("recommendation-list"), {"document": "WRC-2024"}).json()
    by_id = api.get(url("recommendation-list"), {"document": wrc.pk}).json()
    assert by_code["count"] == by_id["count"] == 20
    assert {item["document"] for item in by_code["results"]} == {wrc.pk}
    unknown = api.get(url("recommendation-list"), {"document": "NOPE-2024"})
    assert unknown.status_code == 400
    assert "Select a valid choice" in unknown.json()["document"][0]


def test_a_draft_only_document_is_as_unknown_by_code_as_by_id(api, world):
    secret = DocumentFactory(code="SECRET-2024")
    RecommendationFactory(document=secret, code="SECRET-2024-1", is_published=False)
    for value in ("SECRET-2024", secret.pk):
        assert api.get(url("recommendation-list"), {"document": value}).status_code == 400
        assert api.get(url("statuschange-list"), {"document": value}).status_code == 400


def moves_of(api, query):
    response = api.get(url("statuschange-list"), {**query, "page_size": 100})
    assert response.status_code == 200, response.json()
    by_id = {rec.pk: rec.code for rec in Recommendation.objects.all()}
    return [
        (
            by_id[item["recommendation"]],
            item["effective_on"],
            item["previous_status"],
            item["status"],
        )
        for item in response.json()["results"]
    ]


def test_status_changes_say_what_they_moved_from_and_filter_like_the_page(api, demo):
    hill = [
        ("HILL-2021-4", "2019-03-12", "partial", "stalled"),
        ("HILL-2021-4", "2016-07-26", "in_progress", "partial"),
        ("HILL-2021-4", "2016-01-13", None, "in_progress"),
    ]
    assert moves_of(api, {"document": "HILL-2021"}) == hill
    assert moves_of(api, {"agency": "DHS"}) == hill  # USCIS supports it; DHS includes USCIS
    assert moves_of(api, {"agency": "wh"}) == [("WRC-2024-1.6", "2016-07-26", None, "in_progress")]
    assert moves_of(api, {"theme": "children"}) == [
        ("WRC-2024-1.6", "2016-07-26", None, "in_progress")
    ]
    both_ends = {"effective_after": "2016-07-26", "effective_before": "2016-07-26"}
    assert {move[0] for move in moves_of(api, both_ends)} == {"HILL-2021-4", "WRC-2024-1.6"}


def test_the_status_change_filters_never_reveal_drafts(api, world):
    listed = api.get(url("statuschange-list"), {"agency": "DHS"}).json()
    assert [item["recommendation"] for item in listed["results"]] == [world["child"].pk]
    assert listed["results"][0]["previous_status"] is None


def test_recording_a_status_answers_with_what_it_moved_from(api, world, editor):
    api.force_authenticate(editor)
    response = api.post(
        url("recommendation-record-status", world["child"].pk),
        {"status": "implemented", "effective_on": "2024-09-20", "rationale": "Done."},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["previous_status"] == "partial"


def test_the_schema_documents_the_date_filters(api):
    schema = api.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    parameters = {
        p["name"]: p.get("description", "")
        for p in schema["paths"]["/api/v1/recommendations/"]["get"]["parameters"]
    }
    assert "on or after this day" in parameters["status_changed_after"]
    assert "on or before this day" in parameters["status_changed_before"]
    assert "status change was recorded" in parameters["changed_since"]
    assert "any edit" in parameters["updated_since"]
    assert "by code (WRC-2024) or id" in parameters["document"]


@pytest.mark.parametrize("name", ["progress", "implementation-curve"])
def test_progress_and_the_curve_take_a_document_code_too(api, demo, name):
    from tracker.models import Document

    hill = Document.objects.get(code="HILL-2021")
    query = {"from": "2016-01-01", "to": "2019-12-31", "interval": "year"}
    if name != "progress":
        query = {"months": 120}
    by_code = api.get(url(name), {**query, "document": "HILL-2021"})
    assert by_code.status_code == 200, by_code.json()
    assert by_code.json() == api.get(url(name), {**query, "document": hill.pk}).json()
    assert by_code.json() != api.get(url(name), query).json()  # the document narrowed it


def test_the_filter_backend_filters_by_a_range_filters_parameters():
    """The backend skips a FilterSet that no parameter names; a range filter's parameters
    (`<name>_after`, `<name>_before`) name it too."""
    import django_filters
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from tracker.api.filters import FilterBackend

    class ByPosition(django_filters.FilterSet):
        position = django_filters.RangeFilter()

        class Meta:
            model = Recommendation
            fields = []

    class View:
        filterset_class = ByPosition

    first, second = RecommendationFactory(position=1), RecommendationFactory(position=5)

    def filtered(query):
        request = Request(APIRequestFactory().get("/", query))
        queryset = Recommendation.objects.order_by("position")
        return list(FilterBackend().filter_queryset(request, queryset, View()))

    assert filtered({"position_min": 3}) == [second]
    assert filtered({"position_max": 3}) == [first]
    assert filtered({"page": 2}) == [first, second]
