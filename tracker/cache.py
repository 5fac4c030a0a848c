"""The cache, failing soft: while Redis is unreachable it remembers nothing, and the site
and API keep serving instead of answering 500.

Throttle counts and host slots are conveniences; neither is worth an outage. Reads miss,
writes are dropped, `add` reports nothing added (so no host slot is taken and Celery checks
wait for the cache to come back; a bulk check, told so by `add_or_none`, goes on alone),
`incr` finds no key, and each skipped call is logged.
"""

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError, TimeoutError

logger = logging.getLogger(__name__)

# Errors that mean "Redis cannot be reached", as opposed to a mistake in the call.
UNREACHABLE = (ConnectionError, TimeoutError)
# After Redis fails to answer in time, calls skip it for this long instead of each waiting
# out the timeout: every tracked write touches the cache, so a hung server would otherwise
# cost an import a second per row. A refused connection fails at once and pauses nothing.
HUNG_PAUSE_SECONDS = 5.0

_paused_until = 0.0  # for the whole process: Django gives each thread its own cache object


def cache_is_paused():
    return time.monotonic() < _paused_until


def pause_after(error):
    global _paused_until
    if isinstance(error, TimeoutError):
        _paused_until = time.monotonic() + HUNG_PAUSE_SECONDS


class FailSoftRedisCache(RedisCache):
    def validate_key(self, key):
        """Accept any key, as Redis does: Django's check for memcached's limits reads every
        character of every key, a cost on each page of kept rows (tracker.caching)."""

    def _or(self, fallback, operation, *args):
        if cache_is_paused():
            return fallback
        try:
            return getattr(super(), operation)(*args)
        except UNREACHABLE as error:
            pause_after(error)
            logger.warning("cache unreachable, %s skipped: %s", operation, error)
            return fallback

    def get(self, key, default=None, version=None):
        return self._or(default, "get", key, default, version)

    def get_many(self, keys, version=None):
        return self._or({}, "get_many", keys, version)

    def has_key(self, key, version=None):
        return self._or(False, "has_key", key, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._or(False, "add", key, value, timeout, version)

    def add_or_none(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        """`add`, answering None instead of False when Redis cannot be reached: a bulk check
        waits for a host slot that is taken, but not for a cache that is down."""
        return self._or(None, "add", key, value, timeout, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._or(None, "set", key, value, timeout, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._or(list(data), "set_many", data, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._or(False, "touch", key, timeout, version)

    def delete(self, key, version=None):
        return self._or(False, "delete", key, version)

    def delete_many(self, keys, version=None):
        return self._or(None, "delete_many", keys, version)

    def clear(self):
        return self._or(False, "clear")

    def incr(self, key, delta=1, version=None):
        if cache_is_paused():
            raise ValueError(f"Key {key!r} not found (the cache is not answering).")
        try:
            return super().incr(key, delta, version)
        except UNREACHABLE as error:
            pause_after(error)
            logger.warning("cache unreachable, incr skipped: %s", error)
            raise ValueError(f"Key {key!r} not found (the cache is unreachable).") from error
