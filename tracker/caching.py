"""A version stamp for the tracked data, so that reads can be cached until the next write.

Every transaction that writes what the public and the API read (documents, recommendations,
owners, themes, agencies, history, evidence) gives the data one new version when it commits;
cached responses are keyed by it, so the write makes them unreachable at once, in every
process that shares the cache. The version is a counter (so a test can count the bumps),
started from a random number so that a version lost from the cache is never reused.

A list's rows are also kept one by one, so that a page built after a write reads from the
database only the rows the write changed. A row is stamped with two versions: the structure
(moved by every write but a recorded status) and its own (moved when its status or its
sub-recommendations' roll-up changes: see status_writes).
"""

import hashlib
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

# A counter (the key of the earlier uuid versions held strings, which do not count).
VERSION_KEY = "tracker:data-version-counter"
# Moved by every write but those that change only recommendations' statuses (status_writes).
STRUCTURE_KEY = "tracker:structure-version-counter"
# A recommendation's own version, moved by status_writes.
ROW_VERSION_KEY = "tracker:row-version:{}"
# A safety net: even a write that bypassed the version (raw SQL) shows within this time.
CACHED_FOR_SECONDS = 600


def data_version():
    """Return the current version of the tracked data (created on first use)."""
    return _version(VERSION_KEY)


def _version(key):
    version = cache.get(key)
    if version is None:
        cache.add(key, secrets.randbits(48), None)
        version = cache.get(key)
    return version


@dataclass
class Writes:
    """What a connection's writes made stale that the versions do not show yet: since they
    last moved (moved by the next read that could see the writes, or at the commit), and in
    the open transaction (moved again at its commit: other processes may have kept what they
    read meanwhile under versions moved inside it)."""

    data: bool = False
    structure: bool = False
    rows: set = field(default_factory=set)
    structure_in_transaction: bool = False
    rows_in_transaction: set = field(default_factory=set)
    # Inside status_writes: the recommendations whose statuses the writes change.
    status_rows: set | None = None


def writes_of(connection):
    if not hasattr(connection, "tracker_writes"):
        connection.tracker_writes = Writes()
    return connection.tracker_writes


def note_data_changed():
    """Note a write to the tracked data: the version moves on once per transaction, when it
    commits (at once outside a transaction), however many rows and signals it involves.

    Other processes cannot see the write before the commit, so their reads until then may
    stay cached under the old version. Reads this thread makes inside the transaction can
    see it: the first cached read after a write moves the version on first (see cached).
    """
    connection = transaction.get_connection()
    writes = writes_of(connection)
    writes.data = True
    if writes.status_rows is None:
        writes.structure = writes.structure_in_transaction = True
    if not connection.in_atomic_block:
        _move_versions(committed=True)
        return
    if not any(callback is _new_version_on_commit for _s, callback, _r in connection.run_on_commit):
        transaction.on_commit(_new_version_on_commit)


@contextmanager
def status_writes(recommendation_ids):
    """Within it, writes to the tracked data change only the statuses of the recommendations
    of `recommendation_ids` (with their ancestors, whose roll-ups follow): the kept rows of
    every other recommendation stay valid. Must run inside the transaction that writes."""
    connection = transaction.get_connection()
    assert connection.in_atomic_block, "status_writes needs the writing transaction"
    writes = writes_of(connection)
    outer = writes.status_rows
    writes.status_rows = set(recommendation_ids)
    writes.rows |= writes.status_rows
    writes.rows_in_transaction |= writes.status_rows
    try:
        note_data_changed()
        yield
    finally:
        writes.status_rows = outer


def _new_version_on_commit():
    # A function of its own, so note_data_changed can tell it is queued for this transaction.
    _move_versions(committed=True)


def new_version():
    """Move every version on: nothing kept before stays valid (any write, as far as the cache
    can tell)."""
    connection = transaction.get_connection()
    writes_of(connection).structure = True
    _move_versions(committed=not connection.in_atomic_block)


def _move_versions(*, committed):
    """Move on the versions this thread's writes made stale (see Writes)."""
    writes = writes_of(transaction.get_connection())
    structure, rows = writes.structure, writes.rows
    if committed:
        structure = structure or writes.structure_in_transaction
        rows = rows | writes.rows_in_transaction
        writes.structure_in_transaction, writes.rows_in_transaction = False, set()
    writes.data, writes.structure, writes.rows = False, False, set()
    _move_on(VERSION_KEY)
    if structure:
        _move_on(STRUCTURE_KEY)
    elif rows:
        # A new random version for each row, outliving any row stamped with the one before:
        # even once it expires, no kept row can match the None that follows.
        cache.set_many(
            {ROW_VERSION_KEY.format(pk): secrets.randbits(48) for pk in rows},
            2 * CACHED_FOR_SECONDS,
        )


def _move_on(key):
    try:
        cache.incr(key)
    except ValueError:  # no version yet (or the cache lost it, or is down)
        cache.add(key, secrets.randbits(48), None)


def writes_unseen_by_the_cache():
    """Whether this thread wrote tracked data, uncommitted, since the version last moved."""
    return writes_of(transaction.get_connection()).data


def responses_are_cached():
    return settings.TRACKER_CACHE_RESPONSES


def cached(key_parts, compute, *, through_status_writes=False):
    """Return compute(), cached under `key_parts` until the data next changes (when enabled);
    `through_status_writes`: until a write other than a recorded status (see status_writes),
    for what no status is part of.

    One cache round trip on a hit: the entry keeps the version it was built at and is read
    together with the current version.
    """
    if not responses_are_cached():
        return compute()
    if writes_unseen_by_the_cache():
        _move_versions(committed=False)  # this read sees an uncommitted write: no older entry
    # Hashed: URLs can be long and hold characters some cache backends refuse in keys.
    parts = "\x1f".join(map(str, key_parts))
    key = f"tracker:read:{hashlib.sha256(parts.encode()).hexdigest()}"
    version_key = STRUCTURE_KEY if through_status_writes else VERSION_KEY
    found = cache.get_many([version_key, key])
    version = found.get(version_key) or _version(version_key)
    if version is None:  # the cache is down: build every read
        return compute()
    entry = found.get(key)
    if entry is not None and entry[0] == version:
        return entry[1]
    value = compute()
    cache.set(key, (version, value), CACHED_FOR_SECONDS)
    return value


def cached_rows(ids, key_parts, build):
    """Return the rows of `ids` (those that `build` still finds), each kept until the
    structure or its own version moves on. `build(ids, kept)` returns {id: row} for those
    missing; `kept` holds the rows kept under the current structure, with those that only a
    recorded status made stale (all but their statuses still hold). One cache round trip
    when all are kept, and one more to keep those built."""
    if not responses_are_cached():
        return _in_order(ids, build(ids, {}))
    if writes_unseen_by_the_cache():
        _move_versions(committed=False)  # this read sees an uncommitted write: no older row
    prefix = ":".join(map(str, key_parts))
    entry_keys = [f"tracker:row:{prefix}:{pk}" for pk in ids]
    version_keys = [ROW_VERSION_KEY.format(pk) for pk in ids]
    found = cache.get_many([STRUCTURE_KEY, *version_keys, *entry_keys])
    structure = found.get(STRUCTURE_KEY) or _version(STRUCTURE_KEY)
    if structure is None:  # the cache is down: build every row
        return _in_order(ids, build(ids, {}))
    stamps = {pk: (structure, found.get(key)) for pk, key in zip(ids, version_keys, strict=True)}
    rows, missing, kept = {}, [], {}
    for pk, key in zip(ids, entry_keys, strict=True):
        entry = found.get(key)
        if entry is not None and entry[0][0] == structure:
            kept[pk] = entry[1]
        if entry is not None and entry[0] == stamps[pk]:
            rows[pk] = entry[1]
        else:
            missing.append(pk)
    if missing:
        built = build(missing, kept)
        # Stamped with the versions read before building: a write in between makes the row
        # look stale at the next read, never fresher than it is.
        keys = dict(zip(ids, entry_keys, strict=True))
        cache.set_many(
            {keys[pk]: (stamps[pk], row) for pk, row in built.items()}, CACHED_FOR_SECONDS
        )
        rows.update(built)
    return _in_order(ids, rows)


def _in_order(ids, rows):
    return [rows[pk] for pk in ids if pk in rows]


def _changed(sender, **kwargs):
    note_data_changed()


# The models whose rows the public or the API read; Source because the public sees the kept
# copies of sources cited as evidence.
WATCHED_MODELS = [
    "Publisher",
    "Agency",
    "Theme",
    "Document",
    "Recommendation",
    "Ownership",
    "Evidence",
    "StatusChange",
    "CitedEvidence",
    "Source",
]


def watch_tracked_models():
    """Connect every model whose rows the public or the API read to the version stamp (from
    TrackerConfig.ready: this module sits below the models and never imports them)."""
    models = {name: apps.get_model("tracker", name) for name in WATCHED_MODELS}
    watched = models.values()
    for model in watched:
        post_save.connect(_changed, sender=model, dispatch_uid=f"version-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"version-del-{model.__name__}")
    throughs = (
        models["Recommendation"].themes.through,
        models["Evidence"].recommendations.through,
        models["StatusChange"].evidence.through,
        models["Source"].evidence.through,
        models["Source"].recommendations.through,
    )
    for through in throughs:
        m2m_changed.connect(_changed, sender=through, dispatch_uid=f"version-{through.__name__}")
