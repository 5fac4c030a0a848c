"""Who is asking: the client's address, as far as this deployment can vouch for it.

Throttles, the login lockout and the audit trail all name a client by this one rule.
"""

from django.conf import settings


def client_ip(request) -> str:
    """Return the address of the client that sent `request`.

    Each proxy appends the address it saw to X-Forwarded-For, so with
    TRACKER_TRUSTED_PROXIES = N only the last N entries were written by proxies we run; the
    entry the first of them wrote is the client. Anything before it the client wrote itself,
    so with N = 0 (the default: nothing in front of the app) the header is ignored and the
    socket's peer is the client.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    trusted = settings.TRACKER_TRUSTED_PROXIES
    if trusted <= 0:
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return peer
    return hops[-min(trusted, len(hops))]
