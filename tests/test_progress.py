"""Status as of any date, reconstructed from the history, and progress roll-ups."""

import datetime
import os

import pytest

from tests.factories import AgencyFactory, DocumentFactory, RecommendationFactory
from tracker.models import ASSESSMENTS, Ownership, Recommendation
from tracker.progress import (
    progress_by_agency,
    progress_by_document,
    progress_of_recommendation,
    roll_up,
    rolled_up_progress,
    status_as_of,
)

Status = Recommendation.Status
pytestmark = pytest.mark.django_db


def day(month, date=1, year=2024):
    return datetime.date(year, month, date)


@pytest.fixture
def history():
    """Two recommendations with a history that includes a backdated entry and a correction."""
    first, second = RecommendationFactory(), RecommendationFactory()
    first.record_status(Status.IN_PROGRESS, effective_on=day(2), rationale="Announced.")
    first.record_status(Status.IMPLEMENTED, effective_on=day(5), rationale="Rule final.")
    first.record_status(Status.PARTIAL, effective_on=day(5), rationale="Correction: partial.")
    first.record_status(Status.REVERSED, effective_on=day(9), rationale="Rescinded.")
    second.record_status(Status.STALLED, effective_on=day(4), rationale="Talks stalled.")
    second.record_status(Status.IN_PROGRESS, effective_on=day(3), rationale="Backdated entry.")
    return first, second


def test_status_as_of_replays_the_history_day_by_day(history):
    first, second = history
    expected = {
        day(1): ("not_assessed", "not_assessed"),
        day(2): ("in_progress", "not_assessed"),
        day(3): ("in_progress", "in_progress"),
        day(4): ("in_progress", "stalled"),
        day(5): ("partial", "stalled"),
        day(8, 31): ("partial", "stalled"),
        day(9): ("reversed", "stalled"),
    }
    for on, (first_status, second_status) in expected.items():
        statuses = status_as_of(on)
        assert (statuses[first.pk], statuses[second.pk]) == (first_status, second_status), on


def test_status_as_of_today_agrees_with_the_current_status(history):
    statuses = status_as_of(datetime.date.today())
    for recommendation in Recommendation.objects.all():
        assert statuses[recommendation.pk] == recommendation.status


def test_status_as_of_is_one_query(history, django_assert_num_queries):
    RecommendationFactory.create_batch(5)
    with django_assert_num_queries(1):
        statuses = status_as_of(day(6))
    assert len(statuses) == 7


def test_a_parent_progress_is_the_weighted_average_of_its_children():
    rows = [
        (1, None, 1, "not_started"),
        (2, 1, 1, "implemented"),
        (3, 1, 1, "partial"),
        (4, 1, 2, "not_started"),
        (5, None, 1, "in_progress"),
    ]
    progress = rolled_up_progress(rows)
    assert progress[1] == pytest.approx((1 + 0.5 + 0) / 4)
    assert progress[5] == 0.25


def test_roll_up_goes_down_any_depth():
    rows = [(1, None, 1, "implemented"), (2, 1, 1, "implemented"), (3, 2, 1, "partial")]
    assert rolled_up_progress(rows)[1] == 0.5


def test_recommendation_two_is_forty_percent_done_from_its_bullets():
    document = DocumentFactory()
    parent = RecommendationFactory(document=document)
    statuses = [Status.IMPLEMENTED, Status.PARTIAL, Status.IN_PROGRESS, Status.IN_PROGRESS]
    for status in statuses:
        child = RecommendationFactory(document=document, parent=parent)
        child.record_status(status, effective_on=day(6), rationale="Seen.")
    RecommendationFactory(document=document, parent=parent)  # not yet assessed
    assert progress_of_recommendation(parent) == pytest.approx(0.4)


def test_document_progress_counts_every_status_and_averages_top_level():
    document = DocumentFactory()
    done = RecommendationFactory(document=document)
    done.record_status(Status.IMPLEMENTED, effective_on=day(3), rationale="Done.")
    parent = RecommendationFactory(document=document)
    half = RecommendationFactory(document=document, parent=parent)
    half.record_status(Status.PARTIAL, effective_on=day(4), rationale="Half.")
    RecommendationFactory(document=document, parent=parent)
    other_document = DocumentFactory()

    summaries = progress_by_document([document.pk, other_document.pk])
    summary = summaries[document.pk]
    assert summary.counts["implemented"] == 1
    assert summary.counts["partial"] == 2  # the parent by its half-done child
    assert summary.counts["not_assessed"] == 1
    assert summary.total == 4
    assert summary.progress == pytest.approx((1 + 0.25) / 2)
    assert summary.percent == 62
    assert summaries[other_document.pk].total == 0

    earlier = progress_by_document([document.pk], on=day(3, 15))[document.pk]
    assert earlier.counts["implemented"] == 1
    assert earlier.progress == pytest.approx(0.5)


def test_drafts_can_be_left_out_of_progress():
    document = DocumentFactory()
    RecommendationFactory(document=document, is_published=False)
    published = RecommendationFactory(document=document)
    published.record_status(Status.IMPLEMENTED, effective_on=day(3), rationale="Done.")
    summary = progress_by_document([document.pk], published_only=True)[document.pk]
    assert summary.total == 1
    assert summary.progress == 1


def test_a_parent_counts_under_the_status_its_sub_recommendations_give_it():
    document = DocumentFactory()
    parent = RecommendationFactory(document=document)
    child = RecommendationFactory(document=document, parent=parent)
    RecommendationFactory(document=document, parent=parent)
    child.record_status(Status.PARTIAL, effective_on=day(3), rationale="Half done.")

    counts = progress_by_document([document.pk])[document.pk].counts

    assert counts[Status.PARTIAL] == 2  # the child, and its parent
    assert counts[Status.NOT_ASSESSED] == 1


def test_a_parent_keeps_its_own_status_unless_its_children_contradict_it():
    moving = [Status.IN_PROGRESS, Status.NOT_STARTED]
    assert roll_up(Status.NOT_STARTED, moving).status == Status.IN_PROGRESS
    assert roll_up(Status.NOT_STARTED, [Status.PARTIAL, Status.NOT_STARTED]).status == (
        Status.PARTIAL
    )
    assert roll_up(Status.IMPLEMENTED, moving).status == Status.IN_PROGRESS
    assert roll_up(Status.STALLED, moving).status == Status.STALLED
    assert roll_up(Status.IN_PROGRESS, [Status.NOT_STARTED]).status == Status.IN_PROGRESS
    assert roll_up(Status.NOT_STARTED, [Status.IMPLEMENTED] * 2).status == Status.IMPLEMENTED
    rollup = roll_up(Status.NOT_STARTED, moving)
    assert (rollup.moving, rollup.total, rollup.from_children) == (1, 2, True)
    # Nobody assessed the parent itself: its children speak for it, as for "not started".
    assert roll_up(Status.NOT_ASSESSED, [Status.IN_PROGRESS, Status.NOT_ASSESSED]).status == (
        Status.IN_PROGRESS
    )


def test_agency_progress_covers_lead_and_supporting_roles():
    agency = AgencyFactory()
    led = RecommendationFactory(lead=agency)
    led.record_status(Status.IMPLEMENTED, effective_on=day(3), rationale="Done.")
    supported = RecommendationFactory()
    Ownership.objects.create(recommendation=supported, agency=agency, role="supporting")
    RecommendationFactory()  # someone else's
    summary = progress_by_agency([agency.pk])[agency.pk]
    assert summary.total == 2
    assert summary.progress == 0.5


def test_agency_progress_counts_its_sub_agencies_at_any_depth_once_each():
    department = AgencyFactory()
    office = AgencyFactory(parent=AgencyFactory(parent=department))
    led = RecommendationFactory(lead=office)
    led.record_status(Status.IMPLEMENTED, effective_on=day(3), rationale="Done.")
    Ownership.objects.create(recommendation=led, agency=department, role="supporting")
    RecommendationFactory(lead=office)
    RecommendationFactory(lead=AgencyFactory())  # beside it, not under it
    summary = progress_by_agency([department.pk, office.pk])
    assert summary[department.pk].total == 2
    assert summary[department.pk].progress == 0.5
    assert summary[office.pk].total == 2


def test_document_progress_queries_do_not_grow_with_documents(django_assert_num_queries):
    documents = DocumentFactory.create_batch(6)
    for document in documents:
        RecommendationFactory.create_batch(3, document=document)
    with django_assert_num_queries(2):
        progress_by_document([d.pk for d in documents], on=day(6))


def test_period_ends_cover_the_range_by_interval():
    from tracker.progress import period_ends

    assert period_ends("month", day(1, 15), day(3, 2)) == [day(1, 31), day(2, 29), day(3, 31)]
    assert period_ends("week", day(1, 3), day(1, 15)) == [day(1, 7), day(1, 14), day(1, 21)]
    assert period_ends("year", day(6), datetime.date(2025, 1, 1)) == [
        datetime.date(2024, 12, 31),
        datetime.date(2025, 12, 31),
    ]
    assert period_ends("day", day(2, 28), day(3, 1)) == [day(2, 28), day(2, 29), day(3, 1)]
    with pytest.raises(ValueError, match="interval"):
        period_ends("fortnight", day(1), day(2))


def test_the_progress_series_replays_a_hand_built_history():
    from tracker.progress import progress_series

    document = DocumentFactory()
    parent = RecommendationFactory(document=document)
    first = RecommendationFactory(document=document, parent=parent)
    second = RecommendationFactory(document=document, parent=parent, weight=3)
    single = RecommendationFactory(document=document)
    first.record_status(Status.IMPLEMENTED, effective_on=day(1, 10), rationale="Done.")
    second.record_status(Status.PARTIAL, effective_on=day(2, 5), rationale="Half.")
    second.record_status(Status.IMPLEMENTED, effective_on=day(2, 5), rationale="Correction.")
    single.record_status(Status.IN_PROGRESS, effective_on=day(3, 1), rationale="Started.")
    single.record_status(Status.REVERSED, effective_on=day(3, 20), rationale="Rescinded.")

    series = progress_series(
        Recommendation.objects.filter(document=document),
        interval="month",
        start=day(1),
        end=day(4, 30),
    )
    assert [point["period_end"] for point in series] == [
        day(1, 31),
        day(2, 29),
        day(3, 31),
        day(4, 30),
    ]
    # January: the parent is 1/4 done (weights 1 and 3), the single one not yet assessed.
    assert series[0]["counts"] == {
        "not_assessed": 3,
        "not_started": 0,
        "in_progress": 0,
        "partial": 0,
        "implemented": 1,
        "stalled": 0,
        "reversed": 0,
    }
    assert series[0]["progress"] == pytest.approx((0.25 + 0) / 2)
    # February: the correction makes the second child implemented, so the parent is done.
    assert series[1]["counts"]["implemented"] == 2
    assert series[1]["counts"]["partial"] == 0
    assert series[1]["progress"] == pytest.approx(0.5)
    # March ends reversed; April carries March on.
    assert series[2]["counts"]["reversed"] == 1
    assert series[3] == {**series[2], "period_end": day(4, 30)}


def test_the_progress_series_agrees_with_status_as_of_on_every_period_end():
    from tracker.progress import progress_series

    document = DocumentFactory()
    recommendations = RecommendationFactory.create_batch(6, document=document)
    statuses = ASSESSMENTS
    for index, recommendation in enumerate(recommendations):
        for step in range(index % 4):
            recommendation.record_status(
                statuses[(index + step) % len(statuses)],
                effective_on=day(1 + (index + 3 * step) % 12, 1 + step),
                rationale="Seen.",
            )
    queryset = Recommendation.objects.filter(document=document)
    for point in progress_series(queryset, interval="month", start=day(1), end=day(12, 31)):
        expected = progress_by_document([document.pk], on=point["period_end"])[document.pk]
        assert point["counts"] == expected.counts, point["period_end"]
        assert point["progress"] == pytest.approx(expected.progress, abs=1e-4)


def test_the_progress_series_queries_do_not_grow_with_its_length_or_history(
    django_assert_max_num_queries,
):
    from tracker.progress import progress_series

    document = DocumentFactory()
    queryset = Recommendation.objects.filter(document=document)
    RecommendationFactory(document=document).record_status(
        Status.PARTIAL, effective_on=day(2), rationale="Seen."
    )
    with django_assert_max_num_queries(10) as small:
        progress_series(queryset, interval="month", start=day(1), end=day(1, 31))
    for recommendation in RecommendationFactory.create_batch(20, document=document):
        recommendation.record_status(Status.PARTIAL, effective_on=day(2), rationale="Seen.")
    with django_assert_max_num_queries(len(small.captured_queries)):
        series = progress_series(queryset, interval="day", start=day(1), end=day(12, 31))
    assert len(series) == 366
    assert series[-1]["counts"]["partial"] == 21


@pytest.mark.skipif(
    "postgres" not in os.environ.get("DATABASE_URL", ""),
    reason="compares the PostgreSQL query with the replay it stands in for",
)
def test_the_database_sums_the_same_deltas_as_the_replay():
    from tracker import progress

    document = DocumentFactory()
    parent = RecommendationFactory(document=document)
    kids = RecommendationFactory.create_batch(3, document=document, parent=parent)
    statuses = ASSESSMENTS  # every status a change can record
    for index, kid in enumerate([*kids, parent]):
        for step in range(3):
            kid.record_status(
                statuses[(index + step) % len(statuses)],
                effective_on=day(1 + (index * 2 + step * 3) % 12, 1 + index),
                rationale="Seen.",
            )
    queryset = Recommendation.objects.filter(document=document).exclude(pk=kids[0].pk)
    members = set(queryset.values_list("pk", flat=True))
    factors = progress.leaf_factors(queryset, members)
    tracked = members | set(factors)
    for interval in progress.INTERVALS:
        args = (tracked, members, factors)
        in_sql = progress._period_deltas_in_sql(*args, interval=interval, end=day(12, 31))
        replayed = progress._period_deltas_in_python(*args, interval=interval, end=day(12, 31))
        ends = progress.period_ends(interval, day(1), day(12, 31))
        assert progress._accumulate(ends, in_sql, member_count=len(members)) == (
            progress._accumulate(ends, replayed, member_count=len(members))
        ), interval


def test_a_leaf_under_two_chosen_roots_counts_for_both():
    from tracker.progress import progress_series

    document = DocumentFactory()
    grandparent = RecommendationFactory(document=document)
    middle = RecommendationFactory(document=document, parent=grandparent)
    grandchild = RecommendationFactory(document=document, parent=middle)
    RecommendationFactory(document=document, parent=grandparent)  # not started
    grandchild.record_status(Status.IMPLEMENTED, effective_on=day(3), rationale="Done.")
    chosen = Recommendation.objects.filter(pk__in=[grandparent.pk, grandchild.pk])
    series = progress_series(chosen, interval="month", start=day(3), end=day(3, 31))
    # The grandparent is half done, the grandchild done: their average.
    assert series[0]["progress"] == pytest.approx((0.5 + 1) / 2)
