"""Fixed-window counters in the shared cache: how the API throttles and the sign-up form
count a client's requests.

One counter per key and window, raised with one `incr`: nothing else is read or written,
however busy the client. A cache that cannot be reached counts nothing (tracker/cache.py):
a limit is not worth an outage.
"""

import time

from django.core.cache import cache


def count_in_window(key, *, seconds, now=None):
    """Add one to `key`'s count for the current window of `seconds`; return (the count,
    seconds until the window ends). The count is 0 while the cache is unreachable."""
    now = time.time() if now is None else now
    window = int(now // seconds)
    window_key = f"{key}:{window}"
    try:
        count = cache.incr(window_key)
    except ValueError:  # the window's first request
        cache.add(window_key, 0, seconds)
        try:
            count = cache.incr(window_key)
        except ValueError:  # the cache is unreachable
            count = 0
    return count, max((window + 1) * seconds - now, 0)
