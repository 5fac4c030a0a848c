from django.conf import settings
from rest_framework.throttling import AnonRateThrottle


class AnonymousThrottle(AnonRateThrottle):
    """Limits anonymous clients to settings.TRACKER_API_ANON_RATE, read on each request."""

    def get_rate(self):
        return settings.TRACKER_API_ANON_RATE
