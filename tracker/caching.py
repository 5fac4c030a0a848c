"""A version stamp for the tracked data, so that reads can be cached until the next write.

Every write to what the public and the API read (documents, recommendations, owners, themes,
agencies, history, evidence) gives the data a new version; cached responses are keyed by it,
so a write makes them unreachable at once, in every process that shares the cache.
"""

import hashlib
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

VERSION_KEY = "tracker:data-version"
# A safety net: even a write that bypassed the version (raw SQL) shows within this time.
CACHED_FOR_SECONDS = 600


def data_version():
    """Return the current version of the tracked data (created on first use)."""
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, uuid.uuid4().hex, None)
        version = cache.get(VERSION_KEY)
    return version


def note_data_changed():
    """Give the data a new version now and again once the transaction commits: a read
    between the two, which cannot see the write yet, must not stay cached afterwards."""
    new_version()
    transaction.on_commit(new_version)


def new_version():
    cache.set(VERSION_KEY, uuid.uuid4().hex, None)


def responses_are_cached():
    return settings.TRACKER_CACHE_RESPONSES


def cached(key_parts, compute):
    """Return compute(), cached under `key_parts` until the data next changes (when enabled).

    One cache round trip on a hit: the entry keeps the version it was built at and is read
    together with the current version.
    """
    if not responses_are_cached():
        return compute()
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


def watch_tracked_models():
    """Connect every model whose rows the public or the API read to the version stamp."""
    from . import models

    watched = [
        models.Publisher,
        models.Agency,
        models.Theme,
        models.Document,
        models.Recommendation,
        models.Ownership,
        models.Evidence,
        models.StatusChange,
        models.CitedEvidence,
        models.Source,  # the public sees the kept copies of sources cited as evidence
    ]
    for model in watched:
        post_save.connect(_changed, sender=model, dispatch_uid=f"version-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"version-del-{model.__name__}")
    throughs = (
        models.Recommendation.themes.through,
        models.Evidence.recommendations.through,
        models.StatusChange.evidence.through,
        models.Source.evidence.through,
        models.Source.recommendations.through,
    )
    for through in throughs:
        m2m_changed.connect(_changed, sender=through, dispatch_uid=f"version-{through.__name__}")
