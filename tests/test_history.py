"""The status history: append-only, evidence or rationale, current status from the latest change."""

import datetime
import importlib

import pytest
from auditlog.models import LogEntry
from django.apps import apps as django_apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from tests.factories import EvidenceFactory, RecommendationFactory, UserFactory
from tests.support.outages import celery_broker
from tracker import caching
from tracker.models import (
    STATUS_WEIGHTS,
    Evidence,
    Ownership,
    Recommendation,
    StatusChange,
    Webhook,
    WebhookDelivery,
)

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


# -- What a change costs (bench/status_change.py prints the same figures) -----------------


@pytest.mark.django_db(transaction=True)
def test_a_status_change_saves_once_moves_the_cache_version_once_and_stays_under_14_queries():
    recommendation = RecommendationFactory(is_published=True)
    cited = [EvidenceFactory(title="Announced"), EvidenceFactory(title="Rule")]
    Webhook.objects.create(url="https://partner.example.org/hook")
    # Known to a running server: read once, then cached by Django (a flush forgets them).
    ContentType.objects.get_for_models(Recommendation, StatusChange, Evidence)
    version = caching.data_version()
    with celery_broker("memory://"):  # the delivery is queued, to nobody
        for month, evidence in ((8, cited[:1]), (9, cited)):
            with CaptureQueriesContext(connection) as queries:
                recommendation.record_status(
                    Status.IN_PROGRESS,
                    effective_on=datetime.date(2024, month, 1),
                    evidence=evidence,
                )
            statements = [query["sql"] for query in queries.captured_queries]
            # Two of them keep the progress ledger: the history read, one upsert.
            assert len(statements) <= 14, "\n".join(statements)
            saves = [sql for sql in statements if sql.startswith('UPDATE "tracker_recommendation"')]
            assert len(saves) == 1
    # One new version per transaction, counted by the cache itself.
    assert caching.data_version() == version + 2
    recommendation.refresh_from_db()
    assert (recommendation.status_changed_on, recommendation.evidence.count()) == (
        datetime.date(2024, 9, 1),
        2,
    )
    assert WebhookDelivery.objects.count() == 2


def test_a_status_change_writes_the_audit_entries_a_reader_needs():
    recommendation = RecommendationFactory(code="WRC-2024-1", title="Dates")
    linked, new = EvidenceFactory(title="Linked"), EvidenceFactory(title="New")
    recommendation.evidence.add(linked)
    before = LogEntry.objects.count()
    change = recommendation.record_status(
        Status.PARTIAL, effective_on=datetime.date(2024, 9, 1), evidence=[linked, new]
    )
    entries = [
        (entry.content_type.model, entry.object_pk, entry.changes_dict)
        for entry in LogEntry.objects.order_by("pk")[before:]
    ]
    created, cited, new_link, status = entries  # no more
    assert created[:2] == ("statuschange", str(change.pk)) and created[2]["status"][1] == "partial"
    assert cited[:2] == ("statuschange", str(change.pk))
    assert cited[2]["evidence"]["objects"] == [str(linked), str(new)]
    # Only the evidence not linked before gains a link; it is logged on the evidence.
    assert new_link == (
        "evidence",
        str(new.pk),
        {"recommendations": {"type": "m2m", "operation": "add", "objects": [str(recommendation)]}},
    )
    assert status[:2] == ("recommendation", str(recommendation.pk))
    assert status[2]["status"] == ["not_assessed", "partial"]
