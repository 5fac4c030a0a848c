"""A version stamp for the tracked data, so that reads can be cached until the next write.

Every transaction that writes what the public and the API read (documents, recommendations,
owners, themes, agencies, history, evidence) gives the data one new version when it commits;
cached responses are keyed by it, so the write makes them unreachable at once, in every
process that shares the cache. The version is a counter (so a test can count the bumps),
started from a random number so that a version lost from the cache is never reused.
"""

import hashlib
import secrets

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

# A counter (the key of the earlier uuid versions held strings, which do not count).
VERSION_KEY = "tracker:data-version-counter"
# A safety net: even a write that bypassed the version (raw SQL) shows within this time.
CACHED_FOR_SECONDS = 600


def data_version():
    """Return the current version of the tracked data (created on first use)."""
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, secrets.randbits(48), None)
        version = cache.get(VERSION_KEY)
    return version


def note_data_changed():
    """Note a write to the tracked data: the version moves on once per transaction, when it
    commits (at once outside a transaction), however many rows and signals it involves.

    Other processes cannot see the write before the commit, so their reads until then may
    stay cached under the old version. Reads this thread makes inside the transaction can
    see it: the first cached read after a write moves the version on first (see cached).
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        new_version()
        return
    connection.tracker_data_unseen = True
    if not any(callback is _new_version_on_commit for _s, callback, _r in connection.run_on_commit):
        transaction.on_commit(_new_version_on_commit)


def _new_version_on_commit():
    # A function of its own, so note_data_changed can tell it is queued for this transaction.
    new_version()


def new_version():
    transaction.get_connection().tracker_data_unseen = False
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # no version yet (or the cache lost it, or is down)
        cache.add(VERSION_KEY, secrets.randbits(48), None)


def writes_unseen_by_the_cache():
    """Whether this thread wrote tracked data, uncommitted, since the version last moved."""
    return getattr(transaction.get_connection(), "tracker_data_unseen", False)


def responses_are_cached():
    return settings.TRACKER_CACHE_RESPONSES


def cached(key_parts, compute):
    """Return compute(), cached under `key_parts` until the data next changes (when enabled).

    One cache round trip on a hit: the entry keeps the version it was built at and is read
    together with the current version.
    """
    if not responses_are_cached():
        return compute()
    if writes_unseen_by_the_cache():
        new_version()  # this read sees an uncommitted write: never serve it an older entry
    # Hashed: URLs can be long and hold characters some cache backends refuse in keys.
    parts = "\x1f".join(map(str, key_parts))
    key = f"tracker:read:{hashlib.sha256(parts.encode()).hexdigest()}"
    found = cache.get_many([VERSION_KEY, key])
    version = found.get(VERSION_KEY) or data_version()
    if version is None:  # the cache is down: build every read
        return compute()
    entry = found.get(key)
    if entry is not None and entry[0] == version:
        return entry[1]
    value = compute()
    cache.set(key, (version, value), CACHED_FOR_SECONDS)
    return value


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
