"""Progress digests by email: sign-up with double opt-in, which subscriptions are due, what
happened since each one's last digest, and sending each digest exactly once per period."""

import datetime
import logging
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import (
    Exists,
    F,
    Max,
    OuterRef,
    Prefetch,
    Q,
    prefetch_related_objects,
)
from django.urls import reverse
from django.utils import timezone

from . import emails
from .changes import with_previous_status
from .db import update_each
from .models import (
    BROKEN_AFTER_FAILURES,
    Agency,
    ChangeAlert,
    DigestDelivery,
    Document,
    Evidence,
    Ownership,
    Recommendation,
    Source,
    StatusChange,
    Subscription,
)
from .progress import period_end_of, progress_by_agency, progress_by_document
from .queueing import NOT_QUEUED, Queued, enqueue

logger = logging.getLogger(__name__)

# Attempts at one digest (Celery retries and later runs together) before it stays failed.
MAX_ATTEMPTS = 5
# A digest still "sending" this long after its claim lost its sender: it may be claimed again.
CLAIM_LEASE = datetime.timedelta(minutes=15)
# Digests claimed, built and recorded together.
BATCH_SIZE = 200
# Mail connections sending a batch at once, each from its own thread.
SENDERS = 4
# Confirmation links expire; unsubscribe and preferences links do not.
CONFIRMATION_MAX_AGE = datetime.timedelta(days=7)
CONFIRM_SALT = "tracker.subscription.confirm"
# Anyone can type an address, so sign-up mails it this seldom at most, however often asked:
# the confirmation link, and for an address already subscribed a note saying so.
CONFIRMATION_MAIL_INTERVAL = datetime.timedelta(minutes=10)
ALREADY_SUBSCRIBED_MAIL_INTERVAL = datetime.timedelta(days=1)
MANAGE_SALT = "tracker.subscription.manage"

State = DigestDelivery.State
Frequency = Subscription.Frequency


# -- Signed links ---------------------------------------------------------------------------


class BadLink(Exception):
    """A subscription link that was altered, cut short, expired or whose subscription is gone."""

    def __init__(self, *, expired=False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def confirmation_token(subscription):
    return signing.TimestampSigner(salt=CONFIRM_SALT).sign(str(subscription.pk))


def manage_token(subscription):
    """The token of the preferences and unsubscribe links: they do not expire, so no
    timestamp, and every digest carries the same link."""
    return signing.Signer(salt=MANAGE_SALT).sign(str(subscription.pk))


def subscription_from_token(token, *, purpose):
    """Return the subscription a "confirm" or "manage" token names; raise BadLink."""
    try:
        if purpose == "confirm":
            signer = signing.TimestampSigner(salt=CONFIRM_SALT)
            value = signer.unsign(token, max_age=CONFIRMATION_MAX_AGE)
        else:
            value = signing.Signer(salt=MANAGE_SALT).unsign(token)
    except signing.SignatureExpired as error:
        raise BadLink(expired=True) from error
    except signing.BadSignature as error:
        raise BadLink() from error
    subscription = Subscription.objects.filter(pk=value).first() if value.isdecimal() else None
    if subscription is None:
        raise BadLink()
    return subscription


def subscription_links(subscription, *, confirm=False):
    """Absolute URLs of a subscription's preferences and unsubscribe links, and with
    `confirm` its confirmation link."""
    manage = manage_token(subscription)
    links = {
        "preferences_url": emails.absolute_url(reverse("public:preferences", args=[manage])),
        "unsubscribe_url": emails.absolute_url(reverse("public:unsubscribe", args=[manage])),
    }
    if confirm:
        token = confirmation_token(subscription)
        links["confirm_url"] = emails.absolute_url(reverse("public:confirm", args=[token]))
    return links


# -- Subscribing ----------------------------------------------------------------------------


def language_of(code):
    """The digest language for a request language ("es-mx" → "es"); English otherwise."""
    code = (code or "").split("-")[0].lower()
    return code if code in Subscription.Language.values else Subscription.Language.ENGLISH


def subscribe(*, email, language, frequency, documents, agencies, now=None):
    """Sign `email` up and mail it; return the subscription.

    1. A new address gets a subscription awaiting confirmation, and the confirmation link.
    2. An address subscribed and confirmed keeps its choices (anyone can type an address):
       it is told it is already subscribed, with the link to its preferences.
    3. An unconfirmed or unsubscribed address takes the new choices, gets the link again,
       and receives digests again only once it confirms.
    4. Each mail goes out at most once per its interval (CONFIRMATION_MAIL_INTERVAL,
       ALREADY_SUBSCRIBED_MAIL_INTERVAL): further sign-ups change what 3. says but mail
       nothing. Callers must answer the same whichever case applied and whether a mail
       went out, so that a sign-up tells nothing about an address.
    """
    now = now or timezone.now()
    email = email.strip().lower()
    with transaction.atomic():
        subscription, _created = Subscription.objects.select_for_update().get_or_create(
            email=email,
            defaults={"language": language_of(language), "frequency": frequency},
        )
        already_subscribed = subscription.is_active
        if not already_subscribed:
            subscription.language = language_of(language)
            subscription.frequency = frequency
            subscription.confirmed_at = None  # back only once this sign-up is confirmed
            subscription.save(update_fields=["language", "frequency", "confirmed_at"])
            subscription.documents.set(documents)
            subscription.agencies.set(agencies)
    # Sent once the row is saved (the view runs outside any transaction).
    if already_subscribed:
        send_rationed(
            subscription,
            "already_subscribed_sent_at",
            every=ALREADY_SUBSCRIBED_MAIL_INTERVAL,
            now=now,
            message=lambda: emails.already_subscribed_message(
                subscription, subscription_links(subscription)
            ),
        )
    else:
        send_rationed(
            subscription,
            "confirmation_sent_at",
            every=CONFIRMATION_MAIL_INTERVAL,
            now=now,
            message=lambda: emails.confirmation_message(
                subscription, subscription_links(subscription, confirm=True)
            ),
        )
    return subscription


def send_rationed(subscription, sent_at, *, every, now, message):
    """Send the mail `message()` makes unless `subscription` got it (its field `sent_at`)
    less than `every` ago; return whether it was sent.

    The claim is one conditional UPDATE, so of sign-ups racing for one address exactly one
    sends. A send that fails gives the claim back, so trying again resends.
    """
    previous = getattr(subscription, sent_at)
    due = Q(**{f"{sent_at}__isnull": True}) | Q(**{f"{sent_at}__lte": now - every})
    rows = Subscription.objects.filter(pk=subscription.pk)
    if not rows.filter(due).update(**{sent_at: now}):
        return False
    try:
        message().send()
    except Exception:
        rows.filter(**{sent_at: now}).update(**{sent_at: previous})
        raise
    setattr(subscription, sent_at, now)
    return True


def confirm(subscription, *, now=None):
    """Confirm a subscription awaiting it; a subscriber who had left and signed up again is
    back. A confirmed one is left alone: an old link does not undo an unsubscribe."""
    if subscription.confirmed_at is not None:
        return subscription
    subscription.confirmed_at = now or timezone.now()
    subscription.unsubscribed_at = None
    subscription.save(update_fields=["confirmed_at", "unsubscribed_at"])
    return subscription


def unsubscribe(subscription, *, now=None):
    if subscription.unsubscribed_at is None:
        subscription.unsubscribed_at = now or timezone.now()
        subscription.save(update_fields=["unsubscribed_at"])
    return subscription


# -- Periods --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A digest period: an ISO week ("2026-W48") or a calendar month ("2026-11"), in the
    site's time zone."""

    key: str
    start: datetime.date
    end: datetime.date

    @property
    def starts_at(self):
        return local_midnight(self.start)

    @property
    def ends_at(self):
        return local_midnight(self.end + datetime.timedelta(days=1))


def local_midnight(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time()))


def period_of(frequency, day):
    if frequency == Frequency.WEEKLY:
        year, week, _weekday = day.isocalendar()
        start = day - datetime.timedelta(days=day.weekday())
        return Period(f"{year}-W{week:02d}", start, start + datetime.timedelta(days=6))
    return Period(f"{day:%Y-%m}", day.replace(day=1), period_end_of("month", day))


def parse_period(key):
    """The Period of a key such as "2026-W48" or "2026-11"; ValueError if it is not one."""
    if "-W" in key:
        year, week = key.split("-W")
        return period_of(Frequency.WEEKLY, datetime.date.fromisocalendar(int(year), int(week), 1))
    year, month = key.split("-")
    return period_of(Frequency.MONTHLY, datetime.date(int(year), int(month), 1))


def digest_period(frequency, *, now, current=False):
    """The period a run at `now` sends: the last one completed, or with `current` the one
    under way (`send_digests --now`)."""
    this = period_of(frequency, timezone.localdate(now))
    return this if current else period_of(frequency, this.start - datetime.timedelta(days=1))


# -- Who is due -----------------------------------------------------------------------------

# A delivery that needs nothing more: sent, skipped (nothing happened) or out of attempts.
FINISHED = Q(state__in=[State.SENT, State.SKIPPED]) | Q(
    state=State.FAILED, attempts__gte=MAX_ATTEMPTS
)


def due_subscriptions(*, now=None, current=False):
    """Return [(subscription, period)] for active subscriptions whose digest for the period
    (see digest_period) is not finished. One query per frequency.

    A subscription confirmed after its period ended waits for the next one.
    """
    now = now or timezone.now()
    due = []
    for frequency in Frequency:
        period = digest_period(frequency, now=now, current=current)
        finished = DigestDelivery.objects.filter(
            FINISHED, subscription=OuterRef("pk"), period=period.key
        )
        subscriptions = (
            Subscription.objects.active()
            .filter(frequency=frequency, confirmed_at__lt=min(period.ends_at, now))
            .exclude(Exists(finished))
            .select_related("user")
            .order_by("pk")
        )
        due.extend((subscription, period) for subscription in subscriptions)
    return due


# -- What happened --------------------------------------------------------------------------


@dataclass
class StaffGroup:
    """Staff work waiting under one lead agency (None: no lead agency)."""

    agency: Agency | None
    alerts: list = field(default_factory=list)
    broken_sources: list = field(default_factory=list)
    overdue: list = field(default_factory=list)


@dataclass
class DigestData:
    """What a run's digests are built from, read once for all of them, so the queries per
    digest do not grow with the number of subscribers."""

    changes_by_document: dict
    changes_by_agency: dict
    evidence_by_document: dict
    evidence_by_agency: dict
    family: dict  # agency id → the agency and its sub-agencies
    agencies: dict
    documents: dict
    document_progress: dict
    agency_progress: dict
    covered_from: dict  # subscription id → end of its previous digest (or its confirmation)
    staff_groups: list | None
    # subscription id → where its previous digest ended, for those who had one
    previous_end: dict = field(default_factory=dict)
    # moment → progress as the tracker showed it then (see progress_then), for the moments
    # of previous_end after which a status change was recorded
    progress_then: dict = field(default_factory=dict)
    # Fragments of mail rendered once for the whole run (see emails.digest_message).
    rendered: dict = field(default_factory=dict)


def collect_digest_data(pairs, *, now):
    """Read everything the digests of `pairs` [(subscription, period)] need, in a fixed
    number of queries: the changes and evidence since the earliest window start, indexed by
    document and by agency, progress of every document and agency, and the staff lists."""
    subscriptions = [subscription for subscription, _period in pairs]
    previous = DigestDelivery.objects.filter(state__in=[State.SENT, State.SKIPPED])
    if len(subscriptions) <= 500:
        previous = previous.filter(subscription__in=[s.pk for s in subscriptions])
    else:  # a whole run: every active subscription's, without a huge IN list
        previous = previous.filter(subscription__in=Subscription.objects.active())
    last_until = dict(
        previous.values("subscription_id")
        .annotate(until=Max("covered_until"))
        .values_list("subscription_id", "until")
    )
    covered_from = {}
    for subscription in subscriptions:
        until = last_until.get(subscription.pk)
        # Unconfirmed subscriptions get no digest, but the admin may preview theirs.
        joined = subscription.confirmed_at or subscription.created_at
        covered_from[subscription.pk] = max(until, joined) if until else joined
    earliest = min(covered_from.values())
    latest = min(now, max(period.ends_at for _s, period in pairs))
    # Where a previous digest ended, progress then and now gives the movement since.
    previous_end = {s.pk: covered_from[s.pk] for s in subscriptions if last_until.get(s.pk)}

    agencies = {agency.pk: agency for agency in Agency.objects.all()}
    family = Agency.objects.families(list(agencies))
    published = Recommendation.objects.public().select_related("document")
    changes = list(
        with_previous_status(StatusChange.objects.public())
        .filter(recorded_at__gte=earliest, recorded_at__lt=latest)
        .select_related("recommendation__document")
        .prefetch_related(Prefetch("evidence", queryset=Evidence.objects.public(), to_attr="cited"))
        .order_by("recorded_at", "pk")
    )
    evidence = list(
        Evidence.objects.filter(created_at__gte=earliest, created_at__lt=latest)
        .prefetch_related(Prefetch("recommendations", queryset=published, to_attr="published"))
        .order_by("created_at", "pk")
    )
    touched = {change.recommendation_id for change in changes}
    touched.update(rec.pk for item in evidence for rec in item.published)
    owners = defaultdict(set)
    for recommendation_id, agency_id in Ownership.objects.filter(
        recommendation__in=touched
    ).values_list("recommendation_id", "agency_id"):
        owners[recommendation_id].add(agency_id)

    changes_by_document, changes_by_agency = defaultdict(list), defaultdict(list)
    for change in changes:
        changes_by_document[change.recommendation.document_id].append(change)
        for agency_id in owners[change.recommendation_id]:
            changes_by_agency[agency_id].append(change)
    evidence_by_document, evidence_by_agency = defaultdict(list), defaultdict(list)
    for item in evidence:
        for document_id in {rec.document_id for rec in item.published}:
            evidence_by_document[document_id].append(item)
        for agency_id in {a for rec in item.published for a in owners[rec.pk]}:
            evidence_by_agency[agency_id].append(item)

    documents = {document.pk: document for document in Document.objects.public()}
    staff = any(subscription.is_staff_digest for subscription in subscriptions)
    last_recorded = max((change.recorded_at for change in changes), default=None)
    return DigestData(
        changes_by_document=changes_by_document,
        changes_by_agency=changes_by_agency,
        evidence_by_document=evidence_by_document,
        evidence_by_agency=evidence_by_agency,
        family=family,
        agencies=agencies,
        documents=documents,
        document_progress=progress_by_document(list(documents), published_only=True),
        agency_progress=progress_by_agency(list(agencies), published_only=True),
        covered_from=covered_from,
        previous_end=previous_end,
        progress_then={
            moment: progress_then(moment, documents, agencies)
            for moment in set(previous_end.values())
            if last_recorded is not None and moment <= last_recorded
        },
        staff_groups=staff_groups(agencies, today=timezone.localdate(now)) if staff else None,
    )


def progress_then(moment, documents, agencies):
    """Return ({document id: Progress}, {agency id: Progress}) as the tracker showed them at
    `moment`: what was recorded by then, over today's published recommendations. Five
    queries, so a run asks once per moment its previous digests ended (one per frequency
    on schedule) and only when a status change was recorded since."""
    return (
        progress_by_document(list(documents), published_only=True, recorded_before=moment),
        progress_by_agency(list(agencies), published_only=True, recorded_before=moment),
    )


def staff_groups(agencies, *, today):
    """Return [StaffGroup] by lead agency (by name; no lead agency last): unreviewed change
    alerts and broken sources, under the lead agencies of the recommendations their source
    watches, and recommendations whose review is overdue. Six queries."""
    leads = dict(
        Ownership.objects.filter(role=Ownership.Role.LEAD).values_list(
            "recommendation_id", "agency_id"
        )
    )
    groups = {}

    def group(agency_id):
        if agency_id not in groups:
            groups[agency_id] = StaffGroup(agency=agencies.get(agency_id))
        return groups[agency_id]

    def lead_agencies(source):
        return {leads.get(rec.pk) for rec in source.recommendations.all()} or {None}

    alerts = (
        ChangeAlert.objects.unreviewed()
        .select_related("source")
        .prefetch_related("source__recommendations")
        .order_by("-created_at", "-pk")
    )
    for alert in alerts:
        for agency_id in lead_agencies(alert.source):
            group(agency_id).alerts.append(alert)
    broken = Source.objects.filter(
        is_active=True, consecutive_failures__gte=BROKEN_AFTER_FAILURES
    ).prefetch_related("recommendations")
    for source in broken:
        for agency_id in lead_agencies(source):
            group(agency_id).broken_sources.append(source)
    overdue = (
        Recommendation.objects.current()
        .review_overdue(today=today)
        .select_related("document")
        .order_by("document__code", "position", "code")
    )
    for recommendation in overdue:
        group(leads.get(recommendation.pk)).overdue.append(recommendation)
    return sorted(
        groups.values(),
        key=lambda g: (g.agency is None, g.agency.name.lower() if g.agency else ""),
    )


@dataclass
class Digest:
    """One subscriber's digest: what happened to what they follow in its window."""

    subscription: Subscription
    period: Period
    covered_from: datetime.datetime
    covered_until: datetime.datetime
    changes: list
    evidence: list
    documents: list  # [(document, Progress)]
    agencies: list  # [(agency, Progress)]
    staff_groups: list = field(default_factory=list)
    # Progress when the previous digest ended, by ("document" | "agency", id); empty for a
    # first digest, which has nothing to compare with.
    progress_before: dict = field(default_factory=dict)

    @property
    def is_empty(self):
        """Nothing happened: no status change, no evidence, no staff work waiting."""
        return not (self.changes or self.evidence or self.staff_groups)

    @property
    def first_day(self):
        return timezone.localdate(self.covered_from)

    @property
    def last_day(self):
        """The last day the digest covers: its window ends before `covered_until`, often
        the midnight that starts the next day."""
        return timezone.localdate(self.covered_until - datetime.timedelta(microseconds=1))

    @property
    def effective_span(self):
        """(first, last) day the listed status changes took effect, or None without any."""
        days = [change.effective_on for change in self.changes]
        return (min(days), max(days)) if days else None


def build_digest(subscription, period, *, data=None, now=None):
    """Return the Digest of `subscription` for `period`, from `data` (collected for it
    alone when not given). Following nothing means following every document."""
    now = now or timezone.now()
    if data is None:
        data = collect_digest_data([(subscription, period)], now=now)
    covered_from = data.covered_from[subscription.pk]
    covered_until = min(now, period.ends_at)
    document_ids = [d.pk for d in subscription.documents.all()]
    agency_ids = [a.pk for a in subscription.agencies.all()]
    if not document_ids and not agency_ids:
        document_ids = list(data.documents)
    agency_family = set().union(*(data.family.get(pk, {pk}) for pk in agency_ids))

    def window(items, moment):
        unique = {item.pk: item for item in items if covered_from <= moment(item) < covered_until}
        return sorted(unique.values(), key=lambda item: (moment(item), item.pk))

    changes = window(
        [c for pk in document_ids for c in data.changes_by_document.get(pk, ())]
        + [c for pk in agency_family for c in data.changes_by_agency.get(pk, ())],
        lambda change: change.recorded_at,
    )
    cited = {item.pk for change in changes for item in change.cited}
    evidence = window(
        [e for pk in document_ids for e in data.evidence_by_document.get(pk, ())]
        + [e for pk in agency_family for e in data.evidence_by_agency.get(pk, ())],
        lambda item: item.created_at,
    )
    evidence = [item for item in evidence if item.pk not in cited]  # shown with its change
    documents = [
        (data.documents[pk], data.document_progress[pk])
        for pk in document_ids
        if pk in data.documents
    ]
    agencies = [(data.agencies[pk], data.agency_progress[pk]) for pk in agency_ids]
    progress_before = {}
    if subscription.pk in data.previous_end:
        # No status change recorded since that moment: progress stood where it stands.
        then = data.progress_then.get(data.previous_end[subscription.pk])
        then_documents, then_agencies = then or (data.document_progress, data.agency_progress)
        progress_before.update((("document", d.pk), then_documents[d.pk]) for d, _p in documents)
        progress_before.update((("agency", a.pk), then_agencies[a.pk]) for a, _p in agencies)
    return Digest(
        subscription=subscription,
        period=period,
        covered_from=covered_from,
        covered_until=covered_until,
        changes=changes,
        evidence=evidence,
        documents=sorted(documents, key=lambda pair: pair[0].code),
        agencies=sorted(agencies, key=lambda pair: pair[0].name.lower()),
        staff_groups=(data.staff_groups or []) if subscription.is_staff_digest else [],
        progress_before=progress_before,
    )


# -- Sending --------------------------------------------------------------------------------


def claimable(now):
    """Deliveries a sender may take: waiting or failed with attempts left, or "sending"
    whose sender vanished (its lease ran out)."""
    return Q(state__in=[State.PENDING, State.FAILED], attempts__lt=MAX_ATTEMPTS) | Q(
        state=State.SENDING, claimed_at__lt=now - CLAIM_LEASE
    )


def claim_deliveries(pairs):
    """Create the (subscription, period) delivery rows of `pairs` and claim the ones no other
    sender holds or finished; return {subscription id: delivery} of those claimed.

    The unique (subscription, period) constraint makes the row exist once; the claim is one
    conditional UPDATE stamping a fresh claim id, so of two senders racing for a row exactly
    one matches it, whatever the database.
    """
    DigestDelivery.objects.bulk_create(
        [
            DigestDelivery(
                subscription=subscription,
                period=period.key,
                period_start=period.start,
                period_end=period.end,
            )
            for subscription, period in pairs
        ],
        ignore_conflicts=True,
    )
    by_period = defaultdict(list)
    for subscription, period in pairs:
        by_period[period.key].append(subscription.pk)
    rows = Q()
    for key, subscription_ids in by_period.items():
        rows |= Q(period=key, subscription_id__in=subscription_ids)
    claim, now = uuid.uuid4().hex, timezone.now()
    DigestDelivery.objects.filter(rows).filter(claimable(now)).update(
        state=State.SENDING, claim=claim, claimed_at=now, attempts=F("attempts") + 1
    )
    return {
        delivery.subscription_id: delivery
        for delivery in DigestDelivery.objects.filter(claim=claim, state=State.SENDING)
    }


@dataclass
class Batch:
    """Claimed deliveries of a batch, and the messages to send for them."""

    pairs: list
    claimed: dict
    messages: list


def send_batch(pairs, data, *, now, connection=None):
    """Send the digests of `pairs` over one mail connection; return {subscription id:
    outcome}: "sent", "skipped" (nothing happened), "failed", or "done" (sent, or being
    sent, by someone else).

    1. Claim each (subscription, period) delivery (claim_deliveries): the exactly-once step.
    2. Build each claimed digest; an empty one is skipped unless TRACKER_DIGEST_SEND_EMPTY.
    3. Send each message on its own, so one refused address fails only its own delivery.
    4. Record every outcome, and the subscriptions' last digest.
    """
    batch = prepare_batch(pairs, data, now=now)
    send_messages(batch.messages, connection=connection)
    return finish_batch(batch, now=now)


def prepare_batch(pairs, data, *, now):
    """Steps 1 and 2 of send_batch."""
    claimed = claim_deliveries(pairs)
    messages = []
    for subscription, period in pairs:
        delivery = claimed.get(subscription.pk)
        if delivery is None:
            continue
        try:
            digest = build_digest(subscription, period, data=data, now=now)
            delivery.covered_from = digest.covered_from
            delivery.covered_until = digest.covered_until
            nothing = digest.is_empty and not settings.TRACKER_DIGEST_SEND_EMPTY
            if nothing or digest.covered_from >= digest.covered_until:
                delivery.state, delivery.error = State.SKIPPED, ""
                continue
            links = subscription_links(subscription)
            message = emails.digest_message(digest, links, rendered=data.rendered)
        except Exception as error:  # a bug must not leave the row "sending" until its lease
            logger.exception("digest %s could not be built", delivery.pk)
            delivery.state, delivery.error = State.FAILED, describe_error(error)
            continue
        delivery.message_id = message.extra_headers["Message-ID"]
        messages.append((delivery, message))
    return Batch(pairs=pairs, claimed=claimed, messages=messages)


def send_messages(messages, *, connection=None):
    """Step 3 of send_batch: send [(delivery, message)] over one connection, noting each
    outcome on its delivery. No database access, so it may run in another thread."""
    if not messages:
        return
    connection = connection or get_connection()
    try:
        connection.open()
    except Exception as error:  # no server: every digest of this connection failed
        logger.warning("could not connect to send %s digests: %s", len(messages), error)
        for delivery, _message in messages:
            delivery.state, delivery.error = State.FAILED, describe_error(error)
        return
    try:
        for delivery, message in messages:
            try:
                connection.send_messages([message])
            except Exception as error:  # the server refused it, or the connection broke
                logger.warning("digest %s to %s failed: %s", delivery.pk, message.to, error)
                delivery.state, delivery.error = State.FAILED, describe_error(error)
                _reopen(connection)
            else:
                delivery.state, delivery.error = State.SENT, ""
                delivery.sent_at = timezone.now()
    finally:
        connection.close()


def finish_batch(batch, *, now):
    """Step 4 of send_batch; return {subscription id: outcome}."""
    outcomes = {subscription.pk: "done" for subscription, _period in batch.pairs}
    finished = list(batch.claimed.values())
    sent_by_period = defaultdict(list)
    for delivery in finished:
        outcomes[delivery.subscription_id] = State(delivery.state).value
        if delivery.state == State.SENT:
            sent_by_period[delivery.period].append(delivery.subscription_id)
    with transaction.atomic():  # one commit for the batch
        update_each(finished, OUTCOME_FIELDS)  # each delivery its own outcome
        for key, subscription_ids in sent_by_period.items():
            Subscription.objects.filter(pk__in=subscription_ids).update(
                last_period=key, last_sent_at=now
            )
    return outcomes


# What sending writes back on each delivery.
OUTCOME_FIELDS = ["state", "error", "sent_at", "message_id", "covered_from", "covered_until"]


def describe_error(error):
    return f"{type(error).__name__}: {error}"


def _reopen(connection):
    """After a failure the SMTP session may be unusable: start a fresh one for the rest."""
    try:
        connection.close()
        connection.open()
    except Exception as error:
        logger.warning("could not reopen the mail connection: %s", error)


def send_digest(subscription, period, *, now=None, connection=None):
    """Send `subscription`'s digest for `period` unless it was sent (or is being sent);
    return the outcome (see send_batch). What the Celery task runs."""
    now = now or timezone.now()
    pair = [(subscription, period)]
    return send_batch(pair, collect_digest_data(pair, now=now), now=now, connection=connection)[
        subscription.pk
    ]


# What a batch reads of each subscription, besides its own row.
FOLLOWED = ("documents", "agencies")


def forget_followed(pairs):
    """Drop the documents and agencies read for the subscriptions of `pairs` (no query):
    once their digests are done nothing needs them, and a run keeps every due subscription
    until it ends, so memory would otherwise grow with the number of subscribers."""
    for subscription, _period in pairs:
        subscription.refresh_from_db(fields=FOLLOWED)


def send_due_digests(
    *, now=None, current=False, dry_run=False, batch_size=BATCH_SIZE, progress=None
):
    """Send every due digest (see due_subscriptions) in batches; return a Counter of
    outcomes. With `dry_run`, build them and count what would be sent ("would send" /
    "would skip"), writing nothing. `progress(done, total, outcomes)` follows each batch.

    Mail servers answer slowly next to rendering: while SENDERS threads send one batch
    (each over its own connection, touching no database), this thread claims and builds
    the next; each batch's outcomes are recorded once its sending is over.
    """
    now = now or timezone.now()
    pairs = due_subscriptions(now=now, current=current)
    outcomes = Counter()
    if not pairs:
        return outcomes
    data = collect_digest_data(pairs, now=now)
    with ThreadPoolExecutor(max_workers=SENDERS) as senders:
        sending = None  # (batch, futures) under way

        def finish(done):
            batch, futures = sending
            for future in futures:
                future.result()
            outcomes.update(finish_batch(batch, now=now).values())
            forget_followed(batch.pairs)
            if progress is not None:
                progress(done, len(pairs), outcomes)

        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            prefetch_related_objects([s for s, _p in chunk], *FOLLOWED)
            if dry_run:
                for subscription, period in chunk:
                    digest = build_digest(subscription, period, data=data, now=now)
                    empty = digest.is_empty and not settings.TRACKER_DIGEST_SEND_EMPTY
                    outcomes["would skip" if empty else "would send"] += 1
                forget_followed(chunk)
                if progress is not None:
                    progress(start + len(chunk), len(pairs), outcomes)
                continue
            batch = prepare_batch(chunk, data, now=now)
            if sending is not None:
                finish(start)
            futures = [
                senders.submit(send_messages, batch.messages[index::SENDERS])
                for index in range(SENDERS)
            ]
            sending = (batch, futures)
        if sending is not None:
            finish(len(pairs))
    return outcomes


# -- Queueing -------------------------------------------------------------------------------

# The Celery task sending one digest, named as it is registered (tasks.py builds on this module).
SEND_DIGEST_TASK = "tracker.tasks.send_digest_task"


def queue_digest(delivery):
    """Queue the sending of `delivery`'s digest; if the queue refuses it, mark it for the
    hourly run (resend_unqueued_digests)."""
    if enqueue(SEND_DIGEST_TASK, delivery.subscription_id, delivery.period):
        return True
    DigestDelivery.objects.filter(pk=delivery.pk, state=State.FAILED).update(error=NOT_QUEUED)
    return False


def retry_digests(deliveries):
    """Send the failed ones among `deliveries` (a queryset) again, with fresh attempts.

    Their attempts are reset first, so a queue outage loses none: those the queue refuses
    are marked and the hourly run sends them once it is back. Return a Queued.
    """
    failed = list(deliveries.filter(state=State.FAILED).only("subscription_id", "period"))
    DigestDelivery.objects.filter(pk__in=[delivery.pk for delivery in failed]).update(attempts=0)
    sent = sum(queue_digest(delivery) for delivery in failed)
    return Queued(sent=sent, kept=len(failed) - sent)


def resend_unqueued_digests():
    """Queue again the retried digests the queue refused; return how many were sent."""
    sent = 0
    for delivery in DigestDelivery.objects.filter(state=State.FAILED, error=NOT_QUEUED):
        if not enqueue(SEND_DIGEST_TASK, delivery.subscription_id, delivery.period):
            break
        DigestDelivery.objects.filter(pk=delivery.pk, error=NOT_QUEUED).update(error="")
        sent += 1
    return sent


def next_digest_period(subscription, *, now):
    """The period of `subscription`'s next digest: the earliest one, from the last completed,
    whose digest is not finished and that ends after the previous digest's window."""
    finished = set(subscription.deliveries.filter(FINISHED).values_list("period", flat=True))
    last = subscription.deliveries.filter(state__in=[State.SENT, State.SKIPPED]).aggregate(
        until=Max("covered_until")
    )["until"]
    joined = subscription.confirmed_at or subscription.created_at
    start = max(last, joined) if last else joined
    period = digest_period(subscription.frequency, now=now)
    while period.key in finished or period.ends_at <= start:
        period = period_of(subscription.frequency, period.end + datetime.timedelta(days=1))
    return period


def preview_digest(subscription, *, now=None):
    """Return (digest, message) of `subscription`'s next digest as it stands now, without
    sending or recording anything (the admin's preview)."""
    now = now or timezone.now()
    digest = build_digest(subscription, next_digest_period(subscription, now=now), now=now)
    return digest, emails.digest_message(digest, subscription_links(subscription))
