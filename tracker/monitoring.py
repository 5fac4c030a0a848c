"""Watch sources: record what looking at them shows (`tracker.observing` fetches and
reads), keep every version, raise alerts, turn feed entries into candidate evidence, and
schedule the next look.

Ranking the recommendations a feed entry suggests is `tracker.suggesting`'s job; what staff
then do with alerts and entries (accept, review, dismiss), `tracker.triage`'s. No request
imports, and Celery only through tracker.queueing: tasks and the admin call `check_source`,
the command `check_sources`.
"""

import contextlib
import datetime
import difflib
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Case, Exists, ExpressionWrapper, F, OuterRef, Q, Value, When
from django.utils import timezone

from . import observing
from .caching import note_data_changed
from .db import update_each
from .models import (
    CHECK_STATE_FIELDS,
    ChangeAlert,
    Evidence,
    FeedEntry,
    Source,
    SourceClaim,
    SourceVersion,
)
from .queueing import Queued, enqueue_each, queue_epoch
from .suggesting import suggest_for_new_entries

logger = logging.getLogger(__name__)

# Longest a failing source waits before its next check.
MAX_BACKOFF = datetime.timedelta(days=7)
# Lines of context around each change in an alert's diff.
DIFF_CONTEXT_LINES = 2

# SQLite takes one writer at a time: threads of one process queue here instead of failing.
_sqlite_writes = threading.Lock()


def writing():
    """Return a context for a unit of writes: serialised on SQLite, free elsewhere."""
    return _sqlite_writes if connection.vendor == "sqlite" else contextlib.nullcontext()


class Outcome:
    NOT_MODIFIED = "not_modified"
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    FIRST_VERSION = "first_version"
    FAILED = "failed"


@dataclass(frozen=True)
class CheckResult:
    outcome: str
    new_entries: int = 0
    error: str = ""
    retryable: bool = False


def diff_versions(previous, current):
    """Return a unified diff of two versions' texts, line by line."""
    return "\n".join(
        difflib.unified_diff(
            previous.splitlines() if previous else [],
            current.splitlines(),
            fromfile="previous version",
            tofile="this version",
            n=DIFF_CONTEXT_LINES,
            lineterm="",
        )
    )


def next_regular_check(due_at, interval, now):
    """Return when a source checked at `now`, due at `due_at`, is next due: one interval
    after it was due, so that a one-minute interval means a check a minute; one interval
    from now when the check came early (staff asked) or over an interval late (a backlog),
    so that missed checks are not all made up at once. `next_regular_check_sql` is the same
    rule for many sources in one UPDATE."""
    if now - interval < due_at <= now:
        return due_at + interval
    return now + interval


def next_regular_check_sql(now):
    """`next_regular_check` as an SQL expression over each source's own columns."""
    interval = F("check_interval")
    one_interval_ago = ExpressionWrapper(Value(now) - interval, output_field=models.DateTimeField())
    return Case(
        When(
            Q(next_check_at__lte=now) & Q(next_check_at__gt=one_interval_ago),
            then=ExpressionWrapper(
                F("next_check_at") + interval, output_field=models.DateTimeField()
            ),
        ),
        default=ExpressionWrapper(Value(now) + interval, output_field=models.DateTimeField()),
        output_field=models.DateTimeField(),
    )


def next_check_after_failure(source, now):
    """The first failure waits one interval, then each doubles it, up to MAX_BACKOFF."""
    backoff = source.check_interval * (2 ** min(source.consecutive_failures - 1, 10))
    return now + min(backoff, MAX_BACKOFF)


def watch_of(source):
    return observing.Watch(
        source.pk,
        source.url,
        etag=source.etag,
        last_modified=source.last_modified,
        is_feed=source.kind == Source.Kind.FEED,
    )


def check_source(source, *, now=None, final_attempt=True):
    """Look at `source` once and record what it shows (see `observing.observe` and
    `record_observations`).

    A failure is recorded on the source, which counts it and backs off, unless it is worth
    retrying soon (network trouble) and this is not the `final_attempt`: the result says which.
    """
    observation = observing.observe(watch_of(source))
    if observation.failed and observation.retryable and not final_attempt:
        return CheckResult(Outcome.FAILED, error=observation.error, retryable=True)
    return record_observations([observation], now=now)[0]


def record_observations(observations, *, now=None):
    """Record what a batch of fetches showed, in one transaction; return a CheckResult for
    each, in order.

    1. Sources that answered 304 only have their state updated, in one query for them all.
    2. The others are locked, in id order so that two batches cannot deadlock, and read
       afresh: the same check delivered twice records its change once.
    3. A text with the source's current hash is no change. A new hash keeps a version (one
       per distinct text), and a page raises an alert, also when it goes back to an earlier
       text; a feed's new entries become candidate evidence. A source's first version is
       its baseline, not news.
    4. A failure counts against the source and backs its next check off.
    A batch that collides with another checker's insert (SQLite has no row locks to make
    it wait) is recorded one observation at a time; the colliding one records nothing.
    """
    now = now or timezone.now()
    # Ranking is the slow part of a feed check: done before any row is locked.
    suggestions = {
        id(observation): suggest_for_new_entries(
            observation.watch.source_id, observation.read.entries
        )
        for observation in observations
        if observation.read and observation.read.entries
    }
    try:
        with writing(), transaction.atomic():
            return _record(observations, suggestions=suggestions, now=now)
    except IntegrityError:
        if len(observations) == 1:
            return [CheckResult(Outcome.UNCHANGED)]  # the other checker recorded it
    return [record_observations([observation], now=now)[0] for observation in observations]


def _record(observations, *, suggestions, now):
    # Recorded: the checks are over, and the sources free for the dispatcher once due again.
    SourceClaim.objects.filter(source_id__in={o.watch.source_id for o in observations}).delete()
    not_modified = [o.watch.source_id for o in observations if o.not_modified]
    if not_modified:
        record_not_modified(not_modified, now=now)
    others = [o for o in observations if not o.not_modified]
    locked = {
        source.pk: source
        for source in Source.objects.select_for_update()
        .filter(pk__in={o.watch.source_id for o in others})
        .order_by("pk")
        .only("pk", "url", "kind", "check_interval", *CHECK_STATE_FIELDS)
    }
    kept = _kept_versions(
        {(o.watch.source_id, o.read.content_hash) for o in others if not o.failed}
        | {(source.pk, source.content_hash) for source in locked.values() if source.content_hash}
    )
    new_versions, alerts, results = [], [], {}
    for observation in others:
        source = locked.get(observation.watch.source_id)
        if source is None:
            results[id(observation)] = CheckResult(
                Outcome.FAILED, error="the source was deleted during the check"
            )
        elif observation.failed:
            source.consecutive_failures += 1
            source.last_checked_at = now
            source.last_error = observation.error
            source.next_check_at = next_check_after_failure(source, now)
            results[id(observation)] = CheckResult(
                Outcome.FAILED, error=observation.error, retryable=observation.retryable
            )
            logger.info("check of %s failed: %s", source.url, observation.error)
        else:
            results[id(observation)] = _record_read(
                source,
                observation,
                suggestions=suggestions.get(id(observation), {}),
                kept=kept,
                new_versions=new_versions,
                alerts=alerts,
                now=now,
            )
    SourceVersion.objects.bulk_create(new_versions)
    ChangeAlert.objects.bulk_create(alerts)  # after the versions, whose ids they need
    update_each(locked.values(), CHECK_STATE_FIELDS)  # each source its own values
    if shown_as_kept_copy([version.source for version in new_versions]):
        note_data_changed()  # public pages link evidence to its newest kept copy
    return [results.get(id(o), CheckResult(Outcome.NOT_MODIFIED)) for o in observations]


def _kept_versions(pairs):
    """Return {(source id, content hash): version} for the kept versions among `pairs`."""
    if not pairs:
        return {}
    candidates = SourceVersion.objects.filter(
        source_id__in={source_id for source_id, _ in pairs},
        content_hash__in={content_hash for _, content_hash in pairs},
    )
    return {
        (version.source_id, version.content_hash): version
        for version in candidates
        if (version.source_id, version.content_hash) in pairs
    }


def _record_read(source, observation, *, suggestions, kept, new_versions, alerts, now):
    """Update the locked `source` with what its page or feed said, adding any new version
    and alert to the lists given, and return the check's result."""
    result, read = observation.result, observation.read
    content_hash = read.content_hash
    source.last_checked_at = now
    source.next_check_at = next_regular_check(source.next_check_at, source.check_interval, now)
    source.etag = result.etag[:300]
    source.last_modified = result.last_modified[:100]
    source.consecutive_failures = 0
    source.last_error = ""
    if source.content_hash == content_hash:
        return CheckResult(Outcome.UNCHANGED)
    previous = kept.get((source.pk, source.content_hash))
    version = kept.get((source.pk, content_hash))
    if version is None:
        version = SourceVersion(
            source=source,
            content_hash=content_hash,
            title=read.title,
            text=read.text,
            url=result.url,
            http_status=result.status_code,
            fetched_at=now,
        )
        new_versions.append(version)
        kept[(source.pk, content_hash)] = version  # the same source twice in one batch
    source.content_hash = content_hash
    source.last_changed_at = now
    new_entries = 0
    if read.entries:
        new_entries = record_feed_entries(source, read.entries, suggestions=suggestions, now=now)
    if previous is None:
        return CheckResult(Outcome.FIRST_VERSION, new_entries=new_entries)
    if source.kind == Source.Kind.PAGE:
        alerts.append(
            ChangeAlert(
                source=source,
                version=version,
                previous_version=previous,
                diff=diff_versions(previous.text, version.text),
                created_at=now,
            )
        )
    return CheckResult(Outcome.CHANGED, new_entries=new_entries)


def record_not_modified(source_ids, *, now):
    """Record that these sources answered 304: one query, however many they are."""
    Source.objects.filter(pk__in=source_ids).update(
        last_checked_at=now,
        next_check_at=next_regular_check_sql(now),
        consecutive_failures=0,
        last_error="",
    )


def shown_as_kept_copy(sources):
    """Whether the public pages may show versions of any of `sources` as evidence's kept
    copy: one query, however many they are."""
    pages = [source for source in sources if source.kind == Source.Kind.PAGE]
    if not pages:
        return False
    urls = [source.url for source in pages]
    return Evidence.objects.filter(Q(sources__in=pages) | Q(url__in=urls)).exists()


def record_feed_entries(source, entries, *, suggestions, now):
    """Store the entries not seen before, with their `suggestions` ({guid: [...]})."""
    fresh = FeedEntry.objects.unseen(entries, source_id=source.pk)
    FeedEntry.objects.bulk_create(
        [
            FeedEntry(
                source=source, seen_at=now, suggestions=suggestions.get(entry["guid"], []), **entry
            )
            for entry in fresh
        ],
        ignore_conflicts=True,
    )
    return len(fresh)


# How long a queued check's claim lasts. A source has one claim at most, so however far the
# workers fall behind, each source waits in the queue once; a message lost with Redis is
# noticed at once, by the queue's epoch (see claim_due_sources), one lost any other way
# (a purge, an eviction) after this, as long as Redis takes to hand out a dead worker's task.
QUEUED_LEASE = datetime.timedelta(hours=1)
# How long a running check's claim lasts: longer than a check may run (tasks.CHECK_TIME_LIMIT),
# so a check whose worker died is queued again by the next dispatcher run after it: at most
# two minutes late, one interval plus a minute for a source checked every minute.
RUNNING_LEASE = datetime.timedelta(minutes=1)
# A check started this many times without finishing (each start killed its process: a parser
# crash, the OOM killer) is recorded as a failure instead of being started again.
MAX_STARTS = 3
# How many due sources one claim takes (one transaction); a dispatcher run takes them all.
DISPATCH_BATCH = 1000
# Concurrent requests to one host (and port), so watching many pages of a site stays polite:
# Celery checks and bulk checks together, through one set of host slots.
MAX_REQUESTS_PER_HOST = 4
# How long a host slot outlives a check that never gives it back: longer than a Celery check
# may run (tasks.CHECK_TIME_LIMIT) and than any fetch of a bulk check.
HOST_SLOT_LEASE = 180


class HostBusy(Exception):
    """Too many checks of the same host are running right now."""


def host_slots():
    """The host slots every check takes, in the default cache: Redis shared by the workers,
    the bulk command and its processes, or memory shared by the threads of one process."""
    return observing.HostSlots(
        settings.CACHES["default"],
        limit=MAX_REQUESTS_PER_HOST,
        lease=HOST_SLOT_LEASE,
        cache=caches["default"],
    )


def acquire_host_slot(origin):
    """Take one of the request slots of `origin` and return its key; raise HostBusy when all
    are taken (or the cache cannot say), for the caller to check later instead of waiting."""
    key = host_slots().take(origin)
    if key is None:
        raise HostBusy(origin)
    return key


def release_host_slot(key):
    host_slots().give_back(key)


def claim_due_sources(*, now=None, limit=DISPATCH_BATCH, queued=True):
    """Return the ids of up to `limit` due sources, claimed for one check each, most
    overdue first.

    1. Claims that ran out are dropped (see drop_lost_claims): `queued` claims record the
       queue's epoch.
    2. The due sources without a claim are claimed (see _claim_due).
    """
    now = now or timezone.now()
    epoch = queue_epoch() if queued else ""
    drop_lost_claims(now=now, epoch=epoch)
    return _claim_due(now=now, limit=limit, epoch=epoch)


def drop_lost_claims(*, now, epoch):
    """Drop the claims of checks that were lost, so that their sources are due again: claims
    that ran out, and those of checks queued to an earlier life of the queue than `epoch`
    (Redis restarted empty)."""
    lost = Q(expires_at__lte=now)
    if epoch:
        lost |= Q(queue_epoch__gt="") & ~Q(queue_epoch=epoch)
    SourceClaim.objects.filter(lost).delete()


def _claim_due(*, now, limit, epoch):
    """Claim up to `limit` due sources without a claim, most overdue first, and return their
    ids. They are locked with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so that two
    dispatchers never claim the same source, and claimed in the same transaction. The
    source rows themselves are not written."""
    with transaction.atomic():
        due = list(
            Source.objects.filter(is_active=True, next_check_at__lte=now)
            .exclude(Exists(SourceClaim.objects.filter(source=OuterRef("pk"))))
            .order_by("next_check_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        SourceClaim.objects.bulk_create(
            [
                SourceClaim(
                    source_id=source_id,
                    claimed_at=now,
                    expires_at=now + QUEUED_LEASE,
                    queue_epoch=epoch,
                )
                for source_id in due
            ]
        )
    return due


def queue_due_checks(*, now=None):
    """Claim every due source, a batch at a time, and queue their checks; return how many
    sources were queued.

    All of them, not a batch a minute: the workers, not the dispatcher, set the pace, and a
    source is claimed once however long its check waits. The dispatcher sends one message a
    FAN_OUT sources, which a worker turns into one check each (`queue_checks`): its own work
    stays a fraction of a second a minute at 100,000 sources, and sending the checks grows
    with the workers. When the queue stops answering, the claims not sent are given back and
    the sources stay due for the next run.
    """
    now = now or timezone.now()
    epoch = queue_epoch()  # once a run, as the lost claims are dropped once
    drop_lost_claims(now=now, epoch=epoch)
    queued = 0
    while claimed := _claim_due(now=now, limit=DISPATCH_BATCH, epoch=epoch):
        parts = [claimed[start : start + FAN_OUT] for start in range(0, len(claimed), FAN_OUT)]
        sent = enqueue_each(QUEUE_CHECKS_TASK, [(part,) for part in parts])
        queued += sum(len(part) for part in parts[:sent])
        if sent < len(parts):
            release_claims([pk for part in parts[sent:] for pk in part], claimed_at=now)
            break
    return queued


def queue_checks(source_ids):
    """Queue one check of each of `source_ids` (a part of a dispatcher run); return how many
    were sent. A part sent twice (its worker died as it sent) queues a check twice, which
    records once."""
    return enqueue_each(CHECK_SOURCE_TASK, [(source_id,) for source_id in source_ids])


def release_claims(source_ids, *, claimed_at):
    """Undo the claims made at `claimed_at` on sources whose check could not be sent: they
    are due again at once (their schedule was never moved)."""
    SourceClaim.objects.filter(source_id__in=source_ids, claimed_at=claimed_at).delete()


def start_claimed_check(source_id, *, now=None):
    """Note that the claimed check of `source_id` starts, and return whether to run it.

    Its claim now lasts RUNNING_LEASE, so a check whose process dies is queued again within
    minutes. A check started MAX_STARTS times without finishing is recorded as a failure
    (it backs off like one) and not run. A check nobody claimed (staff asked) just runs.
    """
    now = now or timezone.now()
    claims = SourceClaim.objects.filter(source_id=source_id)
    if not claims.update(expires_at=now + RUNNING_LEASE, starts=F("starts") + 1):
        return True
    if claims.values_list("starts", flat=True).first() <= MAX_STARTS:
        return True
    watch = observing.Watch(source_id, "")
    error = (
        f"the check stopped its worker process {MAX_STARTS} times (a crash or lack of "
        "memory), so it was not run again; the next check is after the usual backoff"
    )
    record_observations([observing.Observation(watch, error=error)], now=now)
    logger.error("check of source %s not started again: %s", source_id, error)
    return False


def hold_claim(source_id, *, now=None):
    """Keep the claim of a check put off for a retry, for as long as a queued one: the
    retry is not a crash, so its starts are counted afresh."""
    now = now or timezone.now()
    SourceClaim.objects.filter(source_id=source_id).update(expires_at=now + QUEUED_LEASE, starts=0)


def mark_due(source_ids, *, now=None):
    """Make these sources due now, for the next dispatcher run to check."""
    Source.objects.filter(pk__in=source_ids, is_active=True).update(
        next_check_at=now or timezone.now()
    )


# The Celery tasks checking one source and queueing a part of a dispatcher run, named as they
# are registered (tasks.py builds on this module).
CHECK_SOURCE_TASK = "tracker.tasks.check_source_task"
QUEUE_CHECKS_TASK = "tracker.tasks.queue_checks_task"
# Sources in one message of the dispatcher's (see queue_due_checks).
FAN_OUT = 100


def check_now(source_ids):
    """Queue a check of each active source among `source_ids` at once; return a Queued.

    Sent now, not on commit, so a queue outage is known to the caller: the sources the
    queue refuses are marked due, and the dispatcher checks them once it is back.
    """
    source_ids = list(
        Source.objects.filter(pk__in=source_ids, is_active=True).values_list("pk", flat=True)
    )
    sent = enqueue_each(CHECK_SOURCE_TASK, [(source_id,) for source_id in source_ids])
    if sent < len(source_ids):
        mark_due(source_ids[sent:])
    return Queued(sent=sent, kept=len(source_ids) - sent)


def defer_check(source, *, delay, now=None):
    """Put the check of `source` off by `delay`: due again then, its claim given up."""
    now = now or timezone.now()
    with transaction.atomic():
        Source.objects.filter(pk=source.pk).update(next_check_at=now + delay)
        SourceClaim.objects.filter(source_id=source.pk).delete()


# A bulk check of at least this many sources spreads the work over processes: starting
# them costs about a third of a second.
PROCESSES_MIN_SOURCES = 100


def default_processes(source_count):
    """Return how many processes a bulk check of `source_count` sources observes with: one
    per CPU, or none (threads of this process) for a few sources or a single CPU."""
    cpus = os.cpu_count() or 1
    return cpus if cpus > 1 and source_count >= PROCESSES_MIN_SOURCES else 0


def check_sources(
    sources, *, concurrency=16, per_host=MAX_REQUESTS_PER_HOST, processes=None, progress=None
):
    """Check `sources` from this process, `concurrency` fetches at a time and at most
    `per_host` per host; call `progress(source, result)` after each. Return a Counter of
    outcomes.

    Each fetch holds a host slot, as a Celery check does, so a bulk run and the workers
    together stay within MAX_REQUESTS_PER_HOST; a fetch whose host is busy waits its turn.

    `processes` processes fetch and extract (default: `default_processes`; 0 uses threads
    of this one), see `observing.observe_all`; this thread records what they saw in batches,
    one transaction each, so a large watch list costs a few writes instead of several
    queries a source.
    """
    sources = {source.pk: source for source in sources}
    if processes is None:
        processes = default_processes(len(sources))
    batches = observing.observe_all(
        [watch_of(source) for source in sources.values()],
        concurrency=concurrency,
        slots=host_slots(),
        per_host=per_host,
        processes=processes,
    )
    outcomes = Counter()
    with contextlib.closing(batches):
        for batch in batches:
            for observation, result in zip(batch, record_observations(batch), strict=True):
                outcomes[result.outcome] += 1
                if progress:
                    progress(sources[observation.watch.source_id], result)
    return outcomes


def watch_evidence_urls(evidence_items):
    """Make each evidence URL a watched page, linked to the evidence and its recommendations.
    Return the number of new sources."""
    created = 0
    with transaction.atomic():
        for evidence in evidence_items:
            if not evidence.url:
                continue
            source, is_new = Source.objects.get_or_create(
                url=evidence.url, defaults={"title": evidence.title[:300]}
            )
            source.evidence.add(evidence)
            source.recommendations.add(*evidence.recommendations.all())
            created += is_new
    return created
