"""The progress ledger says exactly what a replay of the history says, however the history
and the structure were written."""

import datetime
import random

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    RecommendationFactory,
    ThemeFactory,
    UserFactory,
)
from tracker.api.filters import filter_by_agency, filter_by_theme
from tracker.api.serializers import ProgressSeriesSerializer, progress_series_data
from tracker.audit import update_with_audit
from tracker.backup import read_backup, restore_data, write_backup
from tracker.importing import Owners, set_owners
from tracker.ledger import ledger_series, scope_key
from tracker.models import (
    ASSESSMENTS,
    Ownership,
    ProgressDelta,
    ProgressScope,
    ProgressShare,
    ProgressStale,
    Recommendation,
)
from tracker.progress import progress_series

pytestmark = pytest.mark.django_db

START, END = datetime.date(2019, 1, 1), datetime.date(2024, 12, 31)


def replayed(*, staff, document=None, agency=None, theme=None, interval):
    """The reference: the series replayed from the history, filtered as the API filters."""
    within = Recommendation.objects.current() if staff else Recommendation.objects.public()
    members = within
    if document is not None:
        members = members.filter(document_id=document)
    if agency is not None:
        members = filter_by_agency(members, agency)
    if theme is not None:
        members = filter_by_theme(members, theme.slug)
    return progress_series(members, interval=interval, start=START, end=END, within=within)


def assert_ledger_says_what_the_replay_says(world):
    documents, agencies, themes = world
    scopes = [{}]
    scopes += [{"document": document.pk} for document in documents]
    scopes += [{"agency": agency.pk} for agency in agencies]
    scopes += [{"theme": theme} for theme in themes]
    for staff in (False, True):
        for scope in scopes:
            ids = {name: getattr(value, "pk", value) for name, value in scope.items()}
            key = scope_key(staff=staff, **ids)
            for interval in ("month", "year"):
                expected = replayed(staff=staff, interval=interval, **scope)
                got = ledger_series(key, interval=interval, start=START, end=END)
                assert [p["period_end"] for p in got] == [p["period_end"] for p in expected]
                assert got == expected, (key, interval)


def random_day(rng):
    return START + datetime.timedelta(days=rng.randrange((END - START).days))


@pytest.fixture
def world():
    """Two documents of nested recommendations (drafts among them), an agency tree, two
    themes."""
    top = AgencyFactory()
    middle = AgencyFactory(parent=top)
    other = AgencyFactory()
    agencies = [top, middle, AgencyFactory(parent=middle), other]
    themes = [ThemeFactory(), ThemeFactory()]
    documents = [DocumentFactory(), DocumentFactory()]
    rng = random.Random(1)
    for document in documents:
        made = []
        for _n in range(14):
            parent = rng.choice(made) if made and rng.random() < 0.6 else None
            recommendation = RecommendationFactory(
                document=document,
                parent=parent,
                weight=rng.choice([1, 1, 2, 3]),
                is_published=rng.random() < 0.85,
            )
            if rng.random() < 0.8:
                Ownership.objects.create(
                    recommendation=recommendation,
                    agency=rng.choice(agencies[1:]),
                    role=Ownership.Role.LEAD,
                )
            if rng.random() < 0.5:
                recommendation.themes.add(rng.choice(themes))
            made.append(recommendation)
    return documents, agencies, themes


def write_randomly(rng, world, *, steps):
    """Record back-dated changes and same-day corrections, and move the structure around."""
    _documents, agencies, themes = world
    user = UserFactory()
    recommendations = list(Recommendation.objects.all())
    for _ in range(steps):
        recommendation = rng.choice(recommendations)
        action = rng.random()
        if action < 0.6:
            recorded = recommendation.status_changes.values_list("effective_on", flat=True)
            on = rng.choice(list(recorded)) if recorded and rng.random() < 0.3 else None
            recommendation.record_status(
                rng.choice(ASSESSMENTS),
                effective_on=on or random_day(rng),  # the same day again: a correction
                rationale="Seen.",
                by=user,
            )
        elif action < 0.67:  # reparent within its document, as the model allows
            moved = Recommendation.objects.get(pk=recommendation.pk)
            siblings = Recommendation.objects.filter(document_id=moved.document_id)
            moved.parent = rng.choice([*siblings.exclude(pk=moved.pk), None])
            try:
                moved.clean()
            except ValidationError:
                continue
            moved.save()
        elif action < 0.74:
            recommendation.weight = rng.choice([1, 2, 5])
            recommendation.save()
        elif action < 0.8:
            recommendation.is_published = not recommendation.is_published
            recommendation.save()
        elif action < 0.83:
            recommendation.withdrawn_at = None if recommendation.withdrawn_at else timezone.now()
            recommendation.save(update_fields=["withdrawn_at", "updated_at"])
        elif action < 0.9:
            owners = Ownership.objects.filter(recommendation=recommendation)
            if owners.exists():
                owners.first().delete()
            else:
                Ownership.objects.create(
                    recommendation=recommendation,
                    agency=rng.choice(agencies),
                    role=Ownership.Role.LEAD,
                )
        elif action < 0.96:
            theme = rng.choice(themes)
            if recommendation.themes.filter(pk=theme.pk).exists():
                recommendation.themes.remove(theme)
            else:
                theme.recommendations.add(recommendation)
        elif action < 0.98:  # an agency moves in the tree
            moved = agencies[2]
            moved.parent = rng.choice([agencies[0], agencies[1], agencies[3]])
            moved.save()
        else:
            RecommendationFactory(document=recommendation.document, parent=recommendation)
            recommendations = list(Recommendation.objects.all())


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_the_ledger_says_what_the_replay_says_after_random_writes(world, seed):
    rng = random.Random(seed)
    for _ in range(3):
        write_randomly(rng, world, steps=40)
        assert_ledger_says_what_the_replay_says(world)


def test_a_rebuild_says_what_the_kept_ledger_said(world):
    write_randomly(random.Random(5), world, steps=80)
    before = ledger_series(scope_key(staff=True), interval="month", start=START, end=END)
    ProgressDelta.objects.update(count=0, share=0.0)  # a ledger gone wrong
    call_command("rebuild_progress", verbosity=0)
    after = ledger_series(scope_key(staff=True), interval="month", start=START, end=END)
    assert after == before
    assert_ledger_says_what_the_replay_says(world)


def test_a_later_record_on_the_same_day_wins_in_the_ledger():
    recommendation = RecommendationFactory()
    day = datetime.date(2024, 3, 10)
    recommendation.record_status("implemented", effective_on=day, rationale="Done.")
    recommendation.record_status("in_progress", effective_on=day, rationale="Correction.")
    series = ledger_series(
        scope_key(staff=False), interval="month", start=day, end=datetime.date(2024, 4, 1)
    )
    assert series[0]["counts"]["in_progress"] == 1
    assert series[0]["counts"]["implemented"] == 0
    assert series[0]["progress"] == 0.25


def test_the_series_reads_a_number_of_rows_that_does_not_grow_with_the_history(
    django_assert_max_num_queries,
):
    recommendation = RecommendationFactory()
    for n in range(60):
        recommendation.record_status(
            ASSESSMENTS[n % len(ASSESSMENTS)],
            effective_on=datetime.date(2024, 1, 1) + datetime.timedelta(days=n % 28),
            rationale="Again.",
        )
    ledger_series(scope_key(staff=False), interval="month", start=START, end=END)
    rows = ProgressDelta.objects.filter(scope=scope_key(staff=False))
    assert rows.count() <= len(ASSESSMENTS)  # one month: one row per status at most
    with django_assert_max_num_queries(2):  # nothing stale: no refresh
        ledger_series(scope_key(staff=False), interval="month", start=START, end=END)


def test_an_admin_bulk_unpublication_leaves_the_public_series_at_once(world):
    write_randomly(random.Random(7), world, steps=40)
    documents, _agencies, _themes = world
    assert_ledger_says_what_the_replay_says(world)
    chosen = Recommendation.objects.filter(document=documents[0], is_published=True)[:5]
    update_with_audit(
        Recommendation.objects.filter(pk__in=list(chosen.values_list("pk", flat=True))),
        {"is_published": False},
        actor=None,
    )
    assert_ledger_says_what_the_replay_says(world)


def test_a_reimport_that_only_changes_owners_moves_the_agency_series(world):
    write_randomly(random.Random(13), world, steps=40)
    _documents, agencies, _themes = world
    assert_ledger_says_what_the_replay_says(world)
    for recommendation in Recommendation.objects.all()[:6]:
        set_owners(recommendation, Owners(lead=agencies[3], supporting=(agencies[2],)))
    assert_ledger_says_what_the_replay_says(world)


def test_a_restore_brings_its_ledger_along(world, tmp_path):
    write_randomly(random.Random(17), world, steps=60)
    expected = ledger_series(scope_key(staff=True), interval="year", start=START, end=END)
    write_backup(tmp_path / "backup.json")
    write_randomly(random.Random(19), world, steps=30)  # what the restore must undo
    assert ledger_series(scope_key(staff=True), interval="year", start=START, end=END) != (expected)
    restore_data(read_backup(tmp_path / "backup.json"), replace=True)
    assert ledger_series(scope_key(staff=True), interval="year", start=START, end=END) == (expected)
    assert_ledger_says_what_the_replay_says(world)


def test_the_api_writes_a_series_as_its_schema_says(world):
    write_randomly(random.Random(23), world, steps=30)
    series = ledger_series(scope_key(staff=False), interval="year", start=START, end=END)
    assert progress_series_data(series) == ProgressSeriesSerializer({"series": series}).data


def test_a_migrated_database_has_its_ledger_before_the_first_read(world):
    write_randomly(random.Random(31), world, steps=30)
    documents, _agencies, _themes = world
    # As the ledger's migration leaves an existing database: empty, every document stale.
    for model in (ProgressDelta, ProgressShare, ProgressScope):
        model.objects.all().delete()
    ProgressStale.objects.bulk_create(
        (ProgressStale(document_id=d.pk) for d in documents), ignore_conflicts=True
    )
    call_command("migrate", verbosity=0)
    assert not ProgressStale.objects.exists()
    assert_ledger_says_what_the_replay_says(world)
