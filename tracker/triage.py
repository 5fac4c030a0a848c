"""What staff do with what monitoring found: accept a change alert or a feed entry as
evidence, mark alerts reviewed, dismiss entries.

The admin and the API both call these functions, so they give the same answers. Each
operation first claims its rows with one conditional UPDATE (`claim_alerts`,
`claim_entries`): of two staff acting on the same alert at once, only the first is recorded,
and the second is told so in the same words wherever they acted.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import webhooks
from .models import ChangeAlert, Evidence, FeedEntry

# What staff are told when someone else handled the row first (one row, several).
ALERT_ALREADY_REVIEWED = "This alert has already been reviewed."
ALERTS_ALREADY_REVIEWED = "{count} of the {chosen} chosen alerts had already been reviewed."
ENTRY_ALREADY_HANDLED = "This entry has already been accepted or dismissed."
ENTRIES_ALREADY_HANDLED = (
    "{count} of the {chosen} chosen entries had already been accepted or dismissed."
)


class AlreadyHandled(ValidationError):
    """Someone reviewed the alert, or accepted or dismissed the entry, first."""


@dataclass(frozen=True)
class Triaged:
    """What a triage of several rows did: how many it handled, and, when someone else had
    handled some of them first, the message saying so (else "")."""

    done: int
    refused: str = ""


def claim_alerts(alert_ids, *, by):
    """Mark the unreviewed alerts among `alert_ids` reviewed by `by`; return how many.

    The one conditional UPDATE behind every review: an alert already reviewed is left as
    it is, so of two reviewers at once only the first is recorded.
    """
    return (
        ChangeAlert.objects.unreviewed()
        .filter(pk__in=alert_ids)
        .update(reviewed_at=timezone.now(), reviewed_by=by)
    )


def claim_entries(entry_ids, *, state):
    """Move the new feed entries among `entry_ids` to `state`; return how many. Conditional,
    like `claim_alerts`: an entry accepted or dismissed already is left as it is."""
    return FeedEntry.objects.filter(pk__in=entry_ids, state=FeedEntry.State.NEW).update(state=state)


def review_alert(alert, *, by):
    """Mark `alert` reviewed (triage without evidence); raise AlreadyHandled if it was."""
    if not claim_alerts([alert.pk], by=by):
        raise AlreadyHandled(ALERT_ALREADY_REVIEWED)


def review_alerts(alert_ids, *, by):
    """Mark the alerts `alert_ids` reviewed; return a Triaged."""
    alert_ids = list(alert_ids)
    done = claim_alerts(alert_ids, by=by)
    return Triaged(
        done,
        say_already_handled(
            len(alert_ids), done, one=ALERT_ALREADY_REVIEWED, many=ALERTS_ALREADY_REVIEWED
        ),
    )


def dismiss_entries(entry_ids):
    """Dismiss the feed entries `entry_ids`; return a Triaged."""
    entry_ids = list(entry_ids)
    done = claim_entries(entry_ids, state=FeedEntry.State.DISMISSED)
    return Triaged(
        done,
        say_already_handled(
            len(entry_ids), done, one=ENTRY_ALREADY_HANDLED, many=ENTRIES_ALREADY_HANDLED
        ),
    )


def say_already_handled(chosen, done, *, one, many):
    """Say that of `chosen` rows, those `done` did not cover were handled by someone else
    first: for a single row in the very words `review_alert` and the accept functions use."""
    if done >= chosen:
        return ""
    if chosen == 1:
        return one
    return many.format(count=chosen - done, chosen=chosen)


def added_lines(diff, *, limit=1000):
    """The lines a diff adds, as a starting excerpt for evidence."""
    lines = [
        line[1:].strip()
        for line in diff.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    return "\n".join(lines)[:limit]


def accept_alert(alert, *, evidence_fields, recommendations, status="", rationale="", by):
    """Turn a change alert into evidence, and optionally a status change, in one step.

    1. Mark the alert reviewed by `by`; an alert already reviewed is refused
       (AlreadyHandled), so a form sent twice records nothing twice.
    2. Create the evidence from `evidence_fields`, linked to `recommendations` and to the
       alert's source (and to the alert).
    3. With a `status`, record it on each recommendation, citing the evidence, effective on
       the evidence's publication date (else today). All or nothing.
    """
    with transaction.atomic():
        review_alert(alert, by=by)  # first: a second submission of the form finds it reviewed
        evidence = Evidence.objects.create(**evidence_fields)
        evidence.recommendations.set(recommendations)
        alert.source.evidence.add(evidence)
        webhooks.announce_evidence(evidence)
        if status:
            effective_on = evidence.published_on or timezone.localdate()
            for recommendation in recommendations:
                recommendation.record_status(
                    status,
                    effective_on=effective_on,
                    evidence=[evidence],
                    rationale=rationale,
                    by=by,
                )
        ChangeAlert.objects.filter(pk=alert.pk).update(evidence=evidence)
    return evidence


def accept_feed_entry(entry, *, recommendations, kind, effect, by):
    """Create evidence from a feed entry, linked to the chosen recommendations; raise
    AlreadyHandled if the entry was accepted or dismissed already."""
    with transaction.atomic():
        if not claim_entries([entry.pk], state=FeedEntry.State.ACCEPTED):
            raise AlreadyHandled(ENTRY_ALREADY_HANDLED)
        evidence = Evidence.objects.create(
            url=entry.link,
            title=entry.title[:300] or entry.link[:300],
            outlet=entry.source.title[:200],
            published_on=entry.published_at.date() if entry.published_at else None,
            kind=kind,
            effect=effect,
            excerpt=entry.summary[:2000],
        )
        evidence.recommendations.set(recommendations)
        entry.source.evidence.add(evidence)
        webhooks.announce_evidence(evidence)
        FeedEntry.objects.filter(pk=entry.pk).update(evidence=evidence)
    return evidence
