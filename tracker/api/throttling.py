"""API throttles: anonymous clients by address, signed-in non-staff users by account.

A client is named by tracker.clients.client_ip, not by DRF's own reading of X-Forwarded-For
(which, with NUM_PROXIES unset, believes whatever the client writes there).
"""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from ..clients import client_ip
from ..ratelimits import count_in_window


class FixedWindowThrottle:
    """Count with one counter per client and fixed window of the rate's duration: DRF's
    default keeps the time of every request in the window, which it reads and writes whole
    on each request."""

    def get_ident(self, request):
        return client_ip(request)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        count, self.wait_seconds = count_in_window(
            self.key, seconds=self.duration, now=self.timer()
        )
        return count <= self.num_requests

    def wait(self):
        return self.wait_seconds


class AnonymousThrottle(FixedWindowThrottle, AnonRateThrottle):
    """Limits anonymous clients to settings.TRACKER_API_ANON_RATE, read on each request."""

    def get_rate(self):
        return settings.TRACKER_API_ANON_RATE


class UserThrottle(FixedWindowThrottle, UserRateThrottle):
    """Limits signed-in non-staff users (session or token) to settings.TRACKER_API_USER_RATE,
    per account; staff are not throttled."""

    def get_rate(self):
        return settings.TRACKER_API_USER_RATE

    def get_cache_key(self, request, view):
        user = request.user
        if not user.is_authenticated or user.is_staff:
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}
