"""Celery tasks: thin wrappers that re-fetch rows by id and call one domain function."""

import contextlib
import datetime
import logging

from celery import shared_task
from django.core.cache import cache

from . import monitoring
from .models import Source

logger = logging.getLogger(__name__)

# Retries of a check that failed on network trouble, with exponential backoff from this delay.
CHECK_RETRIES = 3
CHECK_RETRY_BASE_SECONDS = 30
# A check put off because its host is busy waits this long for the next dispatch.
HOST_BUSY_DELAY = datetime.timedelta(minutes=1)


class HostBusy(Exception):
    """Too many checks of the same host are running right now."""


def acquire_host_slot(host, *, limit=monitoring.MAX_REQUESTS_PER_HOST, lease=300):
    """Take one of the `limit` slots of `host`, shared by all workers through the cache."""
    key = f"tracker:host-slots:{host}"
    cache.add(key, 0, timeout=lease)
    try:
        taken = cache.incr(key)
    except ValueError:  # the key expired in between
        cache.add(key, 1, timeout=lease)
        taken = 1
    if taken > limit:
        release_host_slot(host)
        raise HostBusy(host)


def release_host_slot(host):
    with contextlib.suppress(ValueError):  # expired: nothing left to release
        cache.decr(f"tracker:host-slots:{host}")


@shared_task(acks_late=True)
def dispatch_due_sources():
    """Claim the due sources and enqueue one check each (run every minute by beat)."""
    claimed = monitoring.claim_due_sources()
    for source_id in claimed:
        check_source_task.delay(source_id)
    return len(claimed)


@shared_task(
    bind=True, acks_late=True, max_retries=CHECK_RETRIES, soft_time_limit=120, time_limit=150
)
def check_source_task(self, source_id):
    source = Source.objects.filter(pk=source_id, is_active=True).first()
    if source is None:
        return "gone"
    host = monitoring.origin_of(source.url)
    try:
        acquire_host_slot(host)
    except HostBusy:
        monitoring.defer_check(source, delay=HOST_BUSY_DELAY)
        return "deferred"
    try:
        result = monitoring.check_source(source)
    finally:
        release_host_slot(host)
    if result.retryable and self.request.retries < CHECK_RETRIES:
        countdown = CHECK_RETRY_BASE_SECONDS * 2**self.request.retries
        raise self.retry(countdown=countdown)
    return result.outcome
