"""Cached API reads: served without queries until a write, whatever the write goes through."""

import datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import EvidenceFactory, RecommendationFactory, ThemeFactory
from tracker import caching
from tracker.models import Ownership, Recommendation

pytestmark = pytest.mark.django_db
Status = Recommendation.Status


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def published(uscis):
    return RecommendationFactory(code="WRC-2024-1", lead=uscis, title="Update the final dates")


def list_titles(api):
    return [row["title"] for row in api.get(reverse("api:recommendation-list")).json()["results"]]


def test_a_repeated_read_costs_no_query(api, published, django_assert_num_queries):
    path = reverse("api:recommendation-detail", args=[published.pk])
    first = api.get(path)
    with django_assert_num_queries(0):
        again = api.get(path)
    assert again.json() == first.json()
    assert again["Last-Modified"] == first["Last-Modified"]


def test_a_status_change_shows_at_once(api, published):
    path = reverse("api:recommendation-detail", args=[published.pk])
    assert api.get(path).json()["status"] == Status.NOT_ASSESSED
    published.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 9, 1), rationale="Announced."
    )
    assert api.get(path).json()["status"] == Status.IN_PROGRESS


def test_a_list_page_built_after_a_write_counts_and_rolls_up_anew(api, published):
    """Every page of a list shares its count and its documents' roll-ups until a write."""
    child = RecommendationFactory(
        document=published.document, code="WRC-2024-1.1", parent=published
    )
    path = reverse("api:recommendation-list")
    first = api.get(path, {"page_size": 1, "page": 1}).json()
    assert first["count"] == 2 and first["results"][0]["rollup"]["moving"] == 0
    child.record_status(Status.IN_PROGRESS, effective_on=datetime.date(2024, 9, 1), rationale="Go.")
    RecommendationFactory(document=published.document, code="WRC-2024-2")
    second = api.get(path, {"page_size": 1, "page": 2}).json()
    assert second["count"] == 3
    again = api.get(path, {"page_size": 1, "page": 1, "lang": "en"}).json()
    assert again["results"][0]["rollup"]["moving"] == 1


def test_edits_to_owners_themes_and_text_show_at_once(api, published, uscis, congress):
    path = reverse("api:recommendation-detail", args=[published.pk])
    api.get(path)
    Ownership.objects.create(recommendation=published, agency=congress, role="supporting")
    owners = api.get(path).json()["owners"]
    assert [owner["agency"]["id"] for owner in owners] == [uscis.pk, congress.pk]
    published.themes.add(ThemeFactory(name="Legal pathways"))
    assert api.get(path).json()["themes"] == ["Legal pathways"]
    published.title = "Update the final dates now"
    published.save()
    assert api.get(path).json()["title"] == "Update the final dates now"
    congress.name = "The Congress"
    congress.save()
    owners = api.get(path).json()["owners"]
    assert "The Congress" in [owner["agency"]["name"] for owner in owners]


def test_publishing_from_the_admin_shows_at_once(client, admin_user, published):
    draft = RecommendationFactory(code="WRC-2024-2", title="A draft", is_published=False)
    api = APIClient()
    assert list_titles(api) == ["Update the final dates"]
    client.force_login(admin_user)
    client.post(
        reverse("admin:tracker_recommendation_changelist"),
        {"action": "publish", "_selected_action": [draft.pk]},
    )
    assert sorted(list_titles(api)) == ["A draft", "Update the final dates"]


def test_staff_pages_never_reach_the_public(api, published, admin_user):
    RecommendationFactory(code="WRC-2024-2", title="Secret draft", is_published=False)
    staff = APIClient()
    staff.force_authenticate(admin_user)
    staff_titles = [
        r["title"] for r in staff.get(reverse("api:recommendation-list")).json()["results"]
    ]
    assert "Secret draft" in staff_titles
    assert list_titles(api) == ["Update the final dates"]


def test_the_progress_series_follows_new_history(api, published):
    query = {"interval": "month", "from": "2024-08-01", "to": "2024-10-31"}
    before = api.get(reverse("api:progress"), query).json()["series"]
    assert [period["progress"] for period in before] == [0, 0, 0]
    published.record_status(
        Status.IMPLEMENTED,
        effective_on=datetime.date(2024, 9, 10),
        evidence=[EvidenceFactory(title="Done")],
    )
    after = api.get(reverse("api:progress"), query).json()["series"]
    assert [period["progress"] for period in after] == [0, 1, 1]


def test_without_the_setting_every_read_is_built(
    api, published, settings, django_assert_num_queries
):
    settings.TRACKER_CACHE_RESPONSES = False
    path = reverse("api:recommendation-detail", args=[published.pk])
    api.get(path)
    with django_assert_num_queries(4):  # with its sub-recommendations' roll-up
        api.get(path)


def test_a_public_page_is_rendered_once_until_the_data_changes(
    client, published, django_assert_num_queries
):
    path = published.get_absolute_url()
    assert "Not yet assessed" in client.get(path).content.decode()
    with django_assert_num_queries(0):
        assert client.get(path).status_code == 200
    published.record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 9, 1), rationale="Done."
    )
    assert "Implemented" in client.get(path).content.decode()


def test_a_public_page_is_cached_per_language(client, published):
    path = published.get_absolute_url()
    english = client.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    spanish = client.get(path, HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Not yet assessed" in english
    assert "Aún sin evaluar" in spanish


def test_cached_feeds_link_to_the_host_they_were_asked_on(client, published, settings):
    settings.ALLOWED_HOSTS = ["tracker.example.org", "internal-lb"]
    published.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 9, 1), rationale="Announced."
    )
    path = reverse("public:feed_updates")
    internal = client.get(path, HTTP_HOST="internal-lb").content.decode()
    public = client.get(path, HTTP_HOST="tracker.example.org").content.decode()
    assert "http://internal-lb/" in internal
    assert "http://tracker.example.org/" in public and "internal-lb" not in public


def test_made_up_query_parameters_are_not_cached(client, published, django_assert_max_num_queries):
    path = published.document.get_absolute_url()
    client.get(path, {"status": "not_assessed"})
    with django_assert_max_num_queries(0):
        client.get(path, {"status": "not_assessed"})  # a parameter the page reads
    client.get(path, {"x": "1"})
    with CaptureQueriesContext(connection) as made_up:
        client.get(path, {"x": "1"})
    assert made_up.captured_queries  # built again, not kept


@pytest.mark.django_db(transaction=True)
def test_a_transaction_moves_the_version_once_however_many_rows_it_writes(uscis, congress):
    recommendation = RecommendationFactory(code="WRC-2024-3", lead=uscis)
    version = caching.data_version()
    with transaction.atomic():
        recommendation.title = "Retitled"
        recommendation.save()
        recommendation.themes.add(ThemeFactory(name="Legal pathways"))
        Ownership.objects.create(recommendation=recommendation, agency=congress)
        assert caching.data_version() == version  # nobody else sees the writes yet
    assert caching.data_version() == version + 1  # counted by the cache itself
    with transaction.atomic():
        recommendation.themes.clear()
        transaction.set_rollback(True)
    assert caching.data_version() == version + 1  # nothing committed, nothing moved
    recommendation.save()  # outside a transaction: at once
    assert caching.data_version() == version + 2


# -- Kept rows -------------------------------------------------------------------------------


def list_as(client, **query):
    return client.get(reverse("api:recommendation-list"), {"page_size": 200, **query}).json()


def fresh_list_as(client, settings, **query):
    """The list built from the database alone, nothing kept."""
    settings.TRACKER_CACHE_RESPONSES = False
    try:
        return list_as(client, **query)
    finally:
        settings.TRACKER_CACHE_RESPONSES = True


@pytest.fixture
def family(uscis, congress):
    """A parent with two children and a grandchild, a draft child, and a stranger."""
    parent = RecommendationFactory(code="F-1", lead=uscis)
    document = parent.document
    first = RecommendationFactory(document=document, code="F-1.1", parent=parent, lead=congress)
    second = RecommendationFactory(document=document, code="F-1.2", parent=parent)
    grandchild = RecommendationFactory(document=document, code="F-1.2.1", parent=second)
    draft = RecommendationFactory(
        document=document, code="F-1.3", parent=parent, is_published=False
    )
    stranger = RecommendationFactory(code="S-1", lead=uscis)
    stranger.themes.add(ThemeFactory(name="Legal pathways"))
    return {
        "parent": parent,
        "first": first,
        "second": second,
        "grandchild": grandchild,
        "draft": draft,
        "stranger": stranger,
    }


def test_a_recorded_status_builds_again_only_its_row_and_its_ancestors(api, family, settings):
    """The read right after a status is recorded: the rows of the recommendation and of its
    ancestors (whose roll-ups follow) come from the database, the others stay kept."""
    list_as(api)
    family["grandchild"].record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 9, 1), rationale="Done."
    )
    with CaptureQueriesContext(connection) as read:
        after = list_as(api)
    rows_read = [q["sql"] for q in read.captured_queries if "tracker_recommendation" in q["sql"]]
    assert not [q for q in read.captured_queries if "tracker_ownership" in q["sql"]]
    assert len(read.captured_queries) <= 4  # the rows, their subtrees: no count, no page of ids
    assert rows_read  # the three rows built again
    rows = {row["code"]: row for row in after["results"]}
    assert rows["F-1.2.1"]["status"] == Status.IMPLEMENTED
    assert rows["F-1.2"]["rollup"]["status"] == Status.IMPLEMENTED
    # F-1.2 counts as it shows (implemented); the draft child is not the public's.
    rollup = rows["F-1"]["rollup"]
    assert (rollup["sub_recommendations"], rollup["moving"], rollup["implemented"]) == (2, 1, 1)
    assert after == fresh_list_as(api, settings)


def test_a_list_asked_by_status_follows_a_recorded_status(api, family, settings):
    """Filters and orderings that read statuses keep neither their count nor their order
    through a recorded status."""
    assert list_as(api, status=Status.IN_PROGRESS)["count"] == 0
    by_change = [row["code"] for row in list_as(api, ordering="-updated_at")["results"]]
    family["parent"].record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 9, 1), rationale="Announced."
    )
    assert list_as(api, status=Status.IN_PROGRESS)["count"] == 1
    after = [row["code"] for row in list_as(api, ordering="-updated_at")["results"]]
    assert after[0] == "F-1" and by_change[0] != "F-1"
    assert list_as(api, ordering="-updated_at") == fresh_list_as(
        api, settings, ordering="-updated_at"
    )


@pytest.mark.parametrize(
    ("query", "blind"),
    [
        ({}, True),
        ({"page": "2", "page_size": "10", "lang": "es", "search": "asylum"}, True),
        ({"ordering": "code"}, True),
        ({"ordering": "-position, code"}, True),
        ({"ordering": "-status"}, False),
        ({"ordering": "code,updated_at"}, False),
        ({"status": "implemented"}, False),
        ({"agency": "USCIS"}, False),
    ],
)
def test_only_lists_no_status_can_change_keep_their_pages_through_statuses(query, blind):
    from django.http import QueryDict

    from tracker.api.views import is_status_blind

    parameters = QueryDict(mutable=True)
    parameters.update(query)
    assert is_status_blind(parameters) is blind


def kept_and_fresh_lists_agree(settings, clients):
    for client in clients:
        for language in ("en", "es"):
            assert list_as(client, lang=language) == fresh_list_as(client, settings, lang=language)


def writes_to_try(family, uscis, congress):
    """Writes of every kind a list row shows, each a function of a random generator."""
    members = list(family.values())

    def record(rng):
        status = rng.choice([Status.IN_PROGRESS, Status.PARTIAL, Status.IMPLEMENTED])
        day = datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(300))
        rng.choice(members).record_status(status, effective_on=day, rationale="News.")

    def rename_agency(rng):
        agency = rng.choice([uscis, congress])
        agency.name = f"{agency.acronym} renamed {rng.randrange(1000)}"
        agency.save()

    def retheme(rng):
        rng.choice(members).themes.add(ThemeFactory())

    def own(rng):
        Ownership.objects.get_or_create(
            recommendation=rng.choice(members), agency=congress, defaults={"role": "supporting"}
        )

    def publish_or_hide(rng):
        member = rng.choice(members)
        member.is_published = not Recommendation.objects.public().filter(pk=member.pk).exists()
        member.save()

    def retitle(rng):
        member = rng.choice(members)
        member.title = f"Retitled {rng.randrange(1000)}"
        member.save()

    def redate_document(rng):
        document = family["parent"].document
        document.published_on = datetime.date(2024, 1, 1) + datetime.timedelta(
            days=rng.randrange(300)
        )
        document.save()

    return [record, record, record, rename_agency, retheme, own, publish_or_hide, retitle,
            redate_document]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_kept_rows_always_match_a_fresh_build(seed, family, uscis, congress, settings, admin_user):
    """After any sequence of writes, recorded statuses mixed with every other kind, the list
    read through its kept rows equals the list built from the database, for the public and
    for staff, in both languages."""
    import random

    rng = random.Random(seed)
    staff = APIClient()
    staff.force_authenticate(admin_user)
    clients = [APIClient(), staff]
    writes = writes_to_try(family, uscis, congress)
    kept_and_fresh_lists_agree(settings, clients)
    for _ in range(12):
        rng.choice(writes)(rng)
        kept_and_fresh_lists_agree(settings, clients)


@pytest.mark.django_db(transaction=True)
def test_kept_rows_match_a_fresh_build_across_commits(family, uscis, congress, settings):
    """The same, with each write committed (the versions move at the commit)."""
    import random

    rng = random.Random(7)
    writes = writes_to_try(family, uscis, congress)
    kept_and_fresh_lists_agree(settings, [APIClient()])
    for _ in range(10):
        with transaction.atomic():
            rng.choice(writes)(rng)
        kept_and_fresh_lists_agree(settings, [APIClient()])
