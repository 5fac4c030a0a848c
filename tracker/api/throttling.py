from django.conf import settings
from rest_framework.throttling import AnonRateThrottle


class AnonymousThrottle(AnonRateThrottle):
    """Limits anonymous clients to settings.TRACKER_API_ANON_RATE, read on each request.

    One counter per client and fixed window of the rate's duration: DRF's default keeps the
    time of every request in the window, which it reads and writes whole on each request.
    """

    def get_rate(self):
        return settings.TRACKER_API_ANON_RATE

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        key = f"{self.key}:{window}"
        try:
            count = self.cache.incr(key)
        except ValueError:  # the window's first request
            self.cache.add(key, 0, self.duration)
            try:
                count = self.cache.incr(key)
            except ValueError:  # the cache is unreachable: throttling is not worth an outage
                return True
        return count <= self.num_requests

    def wait(self):
        return max(self.window_ends - self.now, 0)
