"""Watch sources: fetch, extract the main text, compare, keep every version, raise alerts.

No request or Celery imports: tasks, the admin and `check_sources` all call `check_source`.
"""

import contextlib
import datetime
import difflib
import hashlib
import itertools
import logging
import queue
import re
import threading
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import partial
from html import unescape
from urllib.parse import urljoin, urlsplit

import feedparser
import trafilatura
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections, models, transaction
from django.db.models import ExpressionWrapper, F, Q, Value
from django.utils import timezone

from . import fetching, webhooks
from .caching import note_data_changed
from .models import ChangeAlert, Evidence, FeedEntry, Recommendation, Source, SourceVersion

logger = logging.getLogger(__name__)

# Longest a failing source waits before its next check.
MAX_BACKOFF = datetime.timedelta(days=7)
# How many recommendations a feed entry suggests.
SUGGESTION_LIMIT = 5
# Lines of context around each change in an alert's diff.
DIFF_CONTEXT_LINES = 2

# Lines that only say when a page was updated or printed: they change without news.
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = rf"""(?:
    \d{{4}}-\d{{1,2}}-\d{{1,2}}
    | \d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}
    | {_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}
    | \d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}
)"""
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?(?:\s*[a-z]{2,5})?"
TIMESTAMP_LINE = re.compile(
    rf"""^
    (?:(?:page\s+)?(?:last\s+)?
       (?:updated|modified|reviewed|published|posted|retrieved|printed|accessed)
       (?:\s+on)?\s*:?\s*)?
    (?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?
    (?:{_DATE}(?:,?\s*(?:at\s+)?{_TIME})?|{_TIME})
    \.?$""",
    re.IGNORECASE | re.VERBOSE,
)
WHITESPACE = re.compile(r"\s+")
TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
# Words worth matching between a feed entry and a recommendation.
WORD = re.compile(r"[^\W\d_]{4,}")
STOPWORDS = frozenset(
    """that this with from have will would should their there they them which what when where
    also about into more than been were other such these those some could must under over
    after before while said says year years people including""".split()
)


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


def normalise_text(text):
    """Return `text` in a canonical form: Unicode NFKC, one space between words, no blank or
    timestamp-only lines, so that only real wording changes alter the hash. NUL characters
    are dropped: no page means them, and PostgreSQL cannot store them."""
    lines = []
    for line in unicodedata.normalize("NFKC", (text or "").replace("\x00", "")).splitlines():
        line = WHITESPACE.sub(" ", line).strip()
        if line and not TIMESTAMP_LINE.match(line):
            lines.append(line)
    return "\n".join(lines)


def hash_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def extract_page(html, *, url=""):
    """Return (title, main text) of an HTML page, without menus, ads and footers."""
    # fast: trafilatura's own algorithm only, without its readability and jusText fallbacks,
    # which triple the cost; a page they would rescue falls back to its visible text below.
    document = trafilatura.bare_extraction(
        html,
        url=url or None,
        fast=True,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
    )
    text = document.text if document else ""
    if not text:
        # Short or unusual pages defeat the extractor: fall back to all visible text.
        text = trafilatura.html2txt(html) or ""
    return page_title(html), normalise_text(text)


def page_title(html):
    # The <title> is all we need of the metadata; the full metadata pass doubles the cost.
    match = TITLE.search(html)
    return WHITESPACE.sub(" ", unescape(match.group(1))).strip()[:500] if match else ""


def extract_feed(text, *, base_url=""):
    """Return (title, entries, canonical text) of an RSS/Atom feed."""
    parsed = feedparser.parse(text)
    if parsed.bozo and not parsed.entries:
        raise fetching.FetchError(f"not a valid RSS or Atom feed ({parsed.bozo_exception})")
    entries = [feed_entry_fields(entry, base_url=base_url) for entry in parsed.entries]
    entries = [entry for entry in entries if entry["guid"]]
    canonical = "\n".join(f"{entry['title']} <{entry['link']}>" for entry in entries)
    return parsed.feed.get("title", "")[:500], entries, normalise_text(canonical)


def web_link(href, *, base_url=""):
    """Return `href` made absolute if it is an http(s) link, else "": a feed may offer
    javascript: or data: links, which must never reach a page as an href."""
    url = urljoin(base_url, (href or "").strip())
    return url if urlsplit(url).scheme in {"http", "https"} else ""


def feed_entry_fields(entry, *, base_url=""):
    published = entry.get("published_parsed") or entry.get("updated_parsed")
    published_at = datetime.datetime(*published[:6], tzinfo=datetime.UTC) if published else None
    link = web_link(entry.get("link", ""), base_url=base_url)
    return {
        "guid": (entry.get("id") or link)[:1000],
        "link": link[:1000],
        "title": normalise_text(entry.get("title", ""))[:500],
        "summary": normalise_text(trafilatura.html2txt(entry.get("summary", "")) or ""),
        "published_at": published_at,
    }


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


def next_check_after_failure(source, now):
    """The first failure waits one interval, then each doubles it, up to MAX_BACKOFF."""
    backoff = source.check_interval * (2 ** min(source.consecutive_failures - 1, 10))
    return now + min(backoff, MAX_BACKOFF)


def check_source(source, *, now=None, final_attempt=True, not_modified_batch=None):
    """Fetch `source` once and record what it shows.

    1. Fetch conditionally (ETag, Last-Modified); a 304 only updates the source's state.
    2. Extract and normalise the text, hash it; the same hash as now is no change.
    3. A new hash keeps a version (one per distinct text) and raises an alert, also when the
       page goes back to an earlier text; a feed's new entries become candidate evidence.
    4. Steps 2-3 run under a row lock on the source, so the same check delivered twice
       records the change once.
    A failure is recorded on the source, which counts it and backs off, unless it is worth
    retrying soon (network trouble) and this is not the `final_attempt`: the result says which.
    """
    now = now or timezone.now()
    try:
        result = fetching.fetch(source.url, etag=source.etag, last_modified=source.last_modified)
        if result.not_modified:
            if not_modified_batch is None:
                record_not_modified([source.pk], now=now)
            else:
                not_modified_batch.add(source.pk)
            return CheckResult(Outcome.NOT_MODIFIED)
        if source.kind == Source.Kind.FEED:
            title, entries, text = extract_feed(result.text, base_url=result.url)
            suggestions = suggest_for_new_entries(source, entries)
        else:
            (title, text), entries, suggestions = extract_page(result.text, url=result.url), [], {}
    except fetching.FetchError as error:
        if not (error.retryable and not final_attempt):
            record_failure(source, error.reason, now=now)
        return CheckResult(Outcome.FAILED, error=error.reason, retryable=error.retryable)
    except Exception as error:
        # Whatever a hostile page does to a parser must not wedge its source: record it.
        logger.exception("unexpected error checking %s", source.url)
        reason = f"unexpected error: {type(error).__name__}: {error}"[:1000]
        record_failure(source, reason, now=now)
        return CheckResult(Outcome.FAILED, error=reason)
    try:
        return record_fetch(
            source,
            result,
            title=title,
            text=text,
            entries=entries,
            suggestions=suggestions,
            now=now,
        )
    except IntegrityError:
        # Another process recorded this very version at the same moment (SQLite has no row
        # locks to make it wait): the change is recorded once, by the other check.
        return CheckResult(Outcome.UNCHANGED)


def record_not_modified(source_ids, *, now):
    """Record that these sources answered 304: one query, however many they are."""
    with writing():
        Source.objects.filter(pk__in=source_ids).update(
            last_checked_at=now,
            next_check_at=ExpressionWrapper(
                Value(now) + F("check_interval"), output_field=models.DateTimeField()
            ),
            consecutive_failures=0,
            last_error="",
        )


class NotModifiedBatch:
    """Collects the sources that answered 304 during a bulk check, to record them `size` at a
    time: on a large watch list most checks are 304s, and one write each would dominate."""

    def __init__(self, *, size=200):
        self.size = size
        self.source_ids = []
        self.lock = threading.Lock()

    def add(self, source_id):
        with self.lock:
            self.source_ids.append(source_id)
            if len(self.source_ids) < self.size:
                return
            batch, self.source_ids = self.source_ids, []
        record_not_modified(batch, now=timezone.now())

    def flush(self):
        with self.lock:
            batch, self.source_ids = self.source_ids, []
        if batch:
            record_not_modified(batch, now=timezone.now())


def record_failure(source, reason, *, now):
    with writing(), transaction.atomic():
        locked = Source.objects.select_for_update().filter(pk=source.pk).first()
        if locked is None:  # deleted while it was being checked
            return
        locked.consecutive_failures += 1
        Source.objects.filter(pk=locked.pk).update(
            last_checked_at=now,
            last_error=reason,
            consecutive_failures=locked.consecutive_failures,
            next_check_at=next_check_after_failure(locked, now),
        )
    logger.info("check of %s failed: %s", source.url, reason)


def shown_as_kept_copy(source):
    """Whether the public pages may show this source's versions as evidence's kept copy."""
    if source.kind != Source.Kind.PAGE:
        return False
    return Evidence.objects.filter(Q(sources=source) | Q(url=source.url)).exists()


def record_fetch(source, result, *, title, text, entries, suggestions, now):
    content_hash = hash_text(text)
    with writing(), transaction.atomic():
        locked = Source.objects.select_for_update().filter(pk=source.pk).first()
        if locked is None:
            return CheckResult(Outcome.FAILED, error="the source was deleted during the check")
        state = {
            "last_checked_at": now,
            "next_check_at": now + locked.check_interval,
            "etag": result.etag[:300],
            "last_modified": result.last_modified[:100],
            "consecutive_failures": 0,
            "last_error": "",
        }
        if locked.content_hash == content_hash:
            Source.objects.filter(pk=locked.pk).update(**state)
            return CheckResult(Outcome.UNCHANGED)

        # One query for both: the version shown until now and this text's, if seen before.
        kept = {
            version.content_hash: version
            for version in locked.versions.filter(
                content_hash__in={locked.content_hash, content_hash} - {""}
            )
        }
        previous = kept.get(locked.content_hash)
        version = kept.get(content_hash) or SourceVersion.objects.create(
            source=locked,
            content_hash=content_hash,
            title=title,
            text=text,
            url=result.url,
            http_status=result.status_code,
            fetched_at=now,
        )
        if content_hash not in kept and shown_as_kept_copy(locked):
            note_data_changed()  # public pages link evidence to its newest kept copy
        Source.objects.filter(pk=locked.pk).update(
            content_hash=content_hash, last_changed_at=now, **state
        )
        new_entries = (
            record_feed_entries(locked, entries, suggestions=suggestions, now=now) if entries else 0
        )
        if previous is None:
            # The first look at a source is its baseline, not news.
            return CheckResult(Outcome.FIRST_VERSION, new_entries=new_entries)
        if locked.kind == Source.Kind.PAGE:
            ChangeAlert.objects.create(
                source=locked,
                version=version,
                previous_version=previous,
                diff=diff_versions(previous.text, version.text),
                created_at=now,
            )
        return CheckResult(Outcome.CHANGED, new_entries=new_entries)


def record_feed_entries(source, entries, *, suggestions, now):
    """Store the entries not seen before, with their `suggestions` ({guid: [...]})."""
    known = set(
        FeedEntry.objects.filter(
            source=source, guid__in=[entry["guid"] for entry in entries]
        ).values_list("guid", flat=True)
    )
    fresh = [entry for entry in entries if entry["guid"] not in known]
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


def suggest_for_new_entries(source, entries):
    """Return {guid: suggestions} for the entries `source` has not stored yet.

    Runs before the check takes its row lock: ranking is the slow part of a feed check.
    """
    known = set(
        FeedEntry.objects.filter(
            source=source, guid__in=[entry["guid"] for entry in entries]
        ).values_list("guid", flat=True)
    )
    fresh = [entry for entry in entries if entry["guid"] not in known]
    texts = [f"{entry['title']}\n{entry['summary']}" for entry in fresh]
    prefer = set(source.recommendations.values_list("pk", flat=True))
    ranked = suggest_recommendations(texts, prefer=prefer)
    return {entry["guid"]: suggestions for entry, suggestions in zip(fresh, ranked, strict=True)}


def search_words(text):
    return {word for word in WORD.findall(text.lower()) if word not in STOPWORDS}


def suggest_recommendations(texts, *, prefer=(), limit=SUGGESTION_LIMIT):
    """Return, for each of `texts`, [{"id", "score"}] of the most alike recommendations.

    PostgreSQL ranks with full-text search over title, text and note (a query per text);
    elsewhere a word-overlap score over the recommendations, read once, stands in.
    Recommendations in `prefer` (those linked to the source) rank first.
    """
    if connection.vendor == "postgresql":
        rank = partial(_rank_with_postgres, limit=limit * 2)
    else:
        rank = partial(_rank_by_overlap, index=_recommendation_words(), limit=limit * 2)
    results = []
    for text in texts:
        words = search_words(text)
        scored = rank(words) if words else []
        scored.sort(key=lambda item: (item[0] not in prefer, -item[1]))
        results.append(
            [{"id": pk, "score": round(score, 4)} for pk, score in scored[:limit] if score > 0]
        )
    return results


def _rank_with_postgres(words, *, limit):
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    query = SearchQuery(" | ".join(sorted(words)), search_type="raw", config="english")
    vector = SearchVector("title", "text", "note", config="english")
    rows = (
        Recommendation.objects.annotate(rank=SearchRank(vector, query))
        .filter(rank__gt=0)
        .order_by("-rank", "pk")
        .values_list("pk", "rank")[:limit]
    )
    return [(pk, float(rank)) for pk, rank in rows]


def _recommendation_words():
    rows = Recommendation.objects.values_list("pk", "title", "text", "note")
    return [(pk, search_words(f"{title} {text} {note}")) for pk, title, text, note in rows]


def _rank_by_overlap(words, *, index, limit):
    scored = [(pk, len(words & known) / len(words)) for pk, known in index if words & known]
    scored.sort(key=lambda item: -item[1])
    return scored[:limit]


# How long a claimed source stays claimed: a check lost with its worker is retried after this.
CLAIM_LEASE = datetime.timedelta(minutes=15)
# How many due sources one dispatcher run claims.
DISPATCH_BATCH = 500
# Concurrent requests to one host (and port), so watching many pages of a site stays polite.
MAX_REQUESTS_PER_HOST = 4


def claim_due_sources(*, now=None, limit=DISPATCH_BATCH):
    """Return the ids of up to `limit` due sources, claimed for one check each.

    The claim moves each source's next check a lease ahead, in the same transaction as a
    `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so two dispatchers never claim the
    same source; a check that never reports back is claimed again when its lease runs out.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Source.objects.filter(is_active=True, next_check_at__lte=now)
            .order_by("next_check_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        Source.objects.filter(pk__in=due).update(next_check_at=now + CLAIM_LEASE)
    return due


def release_claims(source_ids, *, claimed_at):
    """Undo the claims made at `claimed_at` on sources whose check could not be sent: they
    are due again at once, unless something has rescheduled them since."""
    Source.objects.filter(pk__in=source_ids, next_check_at=claimed_at + CLAIM_LEASE).update(
        next_check_at=claimed_at
    )


def mark_due(source_ids, *, now=None):
    """Make these sources due now, for the next dispatcher run to check."""
    Source.objects.filter(pk__in=source_ids, is_active=True).update(
        next_check_at=now or timezone.now()
    )


def origin_of(url):
    """Return "host:port" of `url`: the unit the per-host request limit counts."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:  # an impossible port: the fetch guard refuses the URL with a reason
        port = 0
    return f"{(parts.hostname or '').lower()}:{port}"


def defer_check(source, *, delay, now=None):
    now = now or timezone.now()
    Source.objects.filter(pk=source.pk).update(next_check_at=now + delay)


def interleave_by_origin(sources):
    """Order `sources` round-robin across their origins, so that threads taking them in turn
    work on many sites at once instead of queueing behind one site's request limit."""
    by_origin = defaultdict(list)
    for source in sources:
        by_origin[origin_of(source.url)].append(source)
    rounds = itertools.zip_longest(*by_origin.values())
    return [source for round_ in rounds for source in round_ if source is not None]


def check_sources(sources, *, concurrency=16, per_host=MAX_REQUESTS_PER_HOST, progress=None):
    """Check `sources` in this process, `concurrency` at a time and at most `per_host` per
    host; call `progress(source, result)` after each. Return a Counter of outcomes."""
    work = queue.SimpleQueue()
    for source in interleave_by_origin(sources):
        work.put(source)
    host_limits = defaultdict(lambda: threading.BoundedSemaphore(per_host))
    limits_lock = threading.Lock()
    not_modified = NotModifiedBatch()
    outcomes = Counter()
    report_lock = threading.Lock()

    def worker():
        try:
            while True:
                try:
                    source = work.get_nowait()
                except queue.Empty:
                    return
                with limits_lock:
                    slot = host_limits[origin_of(source.url)]
                with slot:
                    result = check_source(source, not_modified_batch=not_modified)
                with report_lock:
                    outcomes[result.outcome] += 1
                    if progress:
                        progress(source, result)
        finally:
            connections.close_all()  # this thread's connections, not the caller's

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, concurrency))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    not_modified.flush()
    return outcomes


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

    1. Mark the alert reviewed by `by`; an alert already reviewed is refused, so a form
       sent twice records nothing twice.
    2. Create the evidence from `evidence_fields`, linked to `recommendations` and to the
       alert's source (and to the alert).
    3. With a `status`, record it on each recommendation, citing the evidence, effective on
       the evidence's publication date (else today). All or nothing.
    """
    with transaction.atomic():
        # Claim the alert first: a second submission of the same form finds it reviewed.
        claimed = (
            ChangeAlert.objects.unreviewed()
            .filter(pk=alert.pk)
            .update(reviewed_at=timezone.now(), reviewed_by=by)
        )
        if not claimed:
            raise ValidationError("This alert has already been reviewed.")
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
    """Create evidence from a feed entry, linked to the chosen recommendations."""
    with transaction.atomic():
        claimed = FeedEntry.objects.filter(pk=entry.pk, state=FeedEntry.State.NEW).update(
            state=FeedEntry.State.ACCEPTED
        )
        if not claimed:
            raise ValidationError("This entry has already been accepted or dismissed.")
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
