"""Is Tracker able to work? The database answers a query and the Celery broker a connection.

Load balancers, the container's HEALTHCHECK and uptime monitors ask /healthz; each check gives
up within a few seconds, so a dead dependency is reported instead of hanging the probe.
"""

import logging

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from kombu import Connection

logger = logging.getLogger(__name__)

OK = "ok"
ERROR = "error"
NOT_CONFIGURED = "not configured"
# Seconds the broker check waits to connect and for each answer.
BROKER_TIMEOUT = 1.5


def check_database(connection=None):
    """Return "ok" if the database answers `SELECT 1`, else "error" (details are logged)."""
    connection = connection or connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("Health check: the database did not answer", exc_info=True)
        return ERROR
    return OK


def check_broker(url=None):
    """Return "ok" if the Celery broker accepts a connection within BROKER_TIMEOUT seconds,
    "not configured" when tasks run in-process, else "error" (details are logged)."""
    url = settings.CELERY_BROKER_URL if url is None else url
    if not url:
        return NOT_CONFIGURED
    timeouts = {"socket_timeout": BROKER_TIMEOUT, "socket_connect_timeout": BROKER_TIMEOUT}
    try:
        with Connection(url, connect_timeout=BROKER_TIMEOUT, transport_options=timeouts) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT)
    except Exception:  # kombu raises its own, redis' and socket errors alike
        logger.warning("Health check: the broker did not answer", exc_info=True)
        return ERROR
    return OK


def check_health():
    """Return {"status", "database", "broker"}: status is "error" if any check failed."""
    checks = {"database": check_database(), "broker": check_broker()}
    return {"status": ERROR if ERROR in checks.values() else OK, **checks}


@never_cache
def healthz(request):
    """200 with each dependency's state when all work, 503 when one does not."""
    health = check_health()
    return JsonResponse(health, status=200 if health["status"] == OK else 503)
