"""The status history: append-only, evidence or rationale, current status from the latest change."""

import datetime
import importlib

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from tests.factories import EvidenceFactory, RecommendationFactory, UserFactory
from tracker.models import STATUS_WEIGHTS, Ownership, Recommendation, StatusChange

Status = Recommendation.Status
pytestmark = pytest.mark.django_db


def test_a_new_recommendation_is_not_yet_assessed():
    recommendation = RecommendationFactory()
    assert recommendation.status == Status.NOT_ASSESSED
    assert recommendation.status_changed_on is None


def test_not_started_is_an_assessment_and_not_yet_assessed_is_none():
    recommendation = RecommendationFactory()
    recommendation.record_status(
        Status.NOT_STARTED, effective_on=datetime.date(2024, 8, 1), rationale="Checked: nothing."
    )
    recommendation.refresh_from_db()
    assert recommendation.status == Status.NOT_STARTED
    with pytest.raises(ValidationError, match="absence of a status change"):
        recommendation.record_status(
            Status.NOT_ASSESSED, effective_on=datetime.date(2024, 8, 2), rationale="Undo."
        )
    assert recommendation.status_changes.count() == 1


def test_the_migration_marks_unrecorded_not_started_as_not_yet_assessed():
    """Today's not_started rows: never set by a change -> not yet assessed; set -> kept."""
    migration = importlib.import_module("tracker.migrations.0010_not_assessed")
    assessed, defaulted = RecommendationFactory(), RecommendationFactory()
    assessed.record_status(
        Status.NOT_STARTED, effective_on=datetime.date(2024, 8, 1), rationale="Checked."
    )
    Recommendation.objects.update(status=Status.NOT_STARTED)  # as before the migration

    migration.mark_unassessed(django_apps, None)

    assessed.refresh_from_db()
    defaulted.refresh_from_db()
    assert (assessed.status, defaulted.status) == (Status.NOT_STARTED, Status.NOT_ASSESSED)


def test_every_status_has_its_progress_weight():
    weights = {status.value: STATUS_WEIGHTS[status] for status in Status}
    assert weights == {
        "not_assessed": 0,
        "not_started": 0,
        "in_progress": 0.25,
        "partial": 0.5,
        "implemented": 1,
        "stalled": 0,
        "reversed": 0,
    }


def test_recording_with_evidence_sets_current_status_and_links_evidence():
    recommendation = RecommendationFactory()
    report = EvidenceFactory()
    editor = UserFactory()
    change = recommendation.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 8, 1), evidence=[report], by=editor
    )
    recommendation.refresh_from_db()
    assert recommendation.status == Status.IN_PROGRESS
    assert recommendation.status_changed_on == datetime.date(2024, 8, 1)
    assert list(change.evidence.all()) == [report]
    assert list(recommendation.evidence.all()) == [report]
    assert change.recorded_by == editor
    assert change.recorded_at is not None


def test_a_change_without_evidence_needs_a_rationale():
    recommendation = RecommendationFactory()
    with pytest.raises(ValidationError, match="evidence or a rationale"):
        recommendation.record_status(Status.IMPLEMENTED, effective_on=datetime.date(2024, 8, 1))
    with pytest.raises(ValidationError):
        recommendation.record_status(
            Status.IMPLEMENTED, effective_on=datetime.date(2024, 8, 1), rationale="   "
        )
    assert not StatusChange.objects.exists()
    recommendation.refresh_from_db()
    assert recommendation.status == Status.NOT_ASSESSED


def test_a_rationale_alone_is_enough():
    recommendation = RecommendationFactory()
    recommendation.record_status(
        Status.STALLED, effective_on=datetime.date(2024, 9, 1), rationale="Talks suspended."
    )
    recommendation.refresh_from_db()
    assert recommendation.status == Status.STALLED


def test_a_change_cannot_take_effect_in_the_future():
    recommendation = RecommendationFactory()
    tomorrow = datetime.date.today() + datetime.timedelta(days=2)
    with pytest.raises(ValidationError, match="future"):
        recommendation.record_status(Status.IMPLEMENTED, effective_on=tomorrow, rationale="Soon")
    assert not StatusChange.objects.exists()


def test_an_unknown_status_code_is_refused():
    recommendation = RecommendationFactory()
    with pytest.raises(ValueError):
        recommendation.record_status("done", effective_on=datetime.date(2024, 1, 1), rationale="x")


def test_a_backdated_change_does_not_override_a_later_one():
    recommendation = RecommendationFactory()
    recommendation.record_status(
        Status.PARTIAL, effective_on=datetime.date(2024, 10, 1), rationale="Rule published."
    )
    recommendation.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 8, 1), rationale="Announced."
    )
    recommendation.refresh_from_db()
    assert recommendation.status == Status.PARTIAL
    assert recommendation.status_changed_on == datetime.date(2024, 10, 1)


def test_a_correction_is_a_new_entry_with_the_same_date():
    recommendation = RecommendationFactory()
    day = datetime.date(2024, 10, 1)
    recommendation.record_status(Status.IMPLEMENTED, effective_on=day, rationale="Misread.")
    recommendation.record_status(Status.PARTIAL, effective_on=day, rationale="Correction.")
    recommendation.refresh_from_db()
    assert recommendation.status == Status.PARTIAL
    assert recommendation.status_changes.count() == 2


def test_history_cannot_be_edited_or_deleted_in_place():
    recommendation = RecommendationFactory()
    change = recommendation.record_status(
        Status.PARTIAL, effective_on=datetime.date(2024, 10, 1), rationale="Rule published."
    )
    change.status = Status.IMPLEMENTED
    with pytest.raises(ValidationError, match="append-only"):
        change.save()
    with pytest.raises(ValidationError, match="append-only"):
        change.delete()
    change.refresh_from_db()
    assert change.status == Status.PARTIAL


def test_history_lists_newest_first():
    recommendation = RecommendationFactory()
    for month in (3, 1, 2):
        recommendation.record_status(
            Status.IN_PROGRESS, effective_on=datetime.date(2024, month, 1), rationale=f"{month}"
        )
    months = [change.effective_on.month for change in recommendation.status_changes.all()]
    assert months == [3, 2, 1]


def test_a_recommendation_has_at_most_one_lead(uscis, congress):
    recommendation = RecommendationFactory(lead=uscis)
    with pytest.raises(IntegrityError):
        Ownership.objects.create(
            recommendation=recommendation, agency=congress, role=Ownership.Role.LEAD
        )


def test_codes_are_unique_within_a_document():
    first = RecommendationFactory(code="WRC-2024-1")
    with pytest.raises(IntegrityError):
        RecommendationFactory(code="WRC-2024-1", document=first.document)


def test_a_parent_must_be_in_the_same_document():
    parent = RecommendationFactory()
    child = RecommendationFactory.build(parent=parent, document=RecommendationFactory().document)
    with pytest.raises(ValidationError, match="same document"):
        child.clean()


def test_recording_a_change_counts_as_a_review():
    recommendation = RecommendationFactory()
    recommendation.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 1, 1), rationale="Checked."
    )
    recommendation.refresh_from_db()
    assert recommendation.last_reviewed_on == datetime.date.today()
    interval = datetime.timedelta(days=recommendation.review_interval_days)
    assert recommendation.review_due_on == datetime.date.today() + interval
