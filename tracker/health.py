"""Is Tracker able to work? The database answers a query and the Celery broker a connection.

Load balancers, the container's HEALTHCHECK and uptime monitors ask /healthz; each check gives
up within a few seconds, so a dead dependency is reported instead of hanging the probe.
"""

import logging
import threading
import time

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
# During an outage a probe asks every few seconds: one warning per dependency this often.
OUTAGE_WARNING_EVERY = 60


class OutageLog:
    """Log a dependency's outage once per OUTAGE_WARNING_EVERY seconds (per process), with
    its cause on one line, and its return once: not a traceback per probe."""

    def __init__(self, name, *, clock=time.monotonic):
        self.name = name
        self.clock = clock
        self.lock = threading.Lock()
        self.down_since = None
        self.warned_at = None
        self.missed = 0

    def failed(self, error):
        with self.lock:
            now = self.clock()
            if self.down_since is None:
                self.down_since = now
            if self.warned_at is not None and now - self.warned_at < OUTAGE_WARNING_EVERY:
                self.missed += 1
                return
            repeated = f" ({self.missed} more failed checks since the last warning)"
            logger.warning(
                "Health check: the %s did not answer for %d s: %s: %s%s",
                self.name,
                now - self.down_since,
                type(error).__name__,
                error,
                repeated if self.missed else "",
            )
            self.warned_at, self.missed = now, 0

    def answered(self):
        with self.lock:
            if self.down_since is None:
                return
            logger.warning(
                "Health check: the %s answers again, after %d s",
                self.name,
                self.clock() - self.down_since,
            )
            self.down_since = self.warned_at = None
            self.missed = 0


database_outages = OutageLog("database")
broker_outages = OutageLog("broker")


def check_database(connection=None):
    """Return "ok" if the database answers `SELECT 1`, else "error" (see OutageLog)."""
    connection = connection or connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        database_outages.failed(error)
        return ERROR
    database_outages.answered()
    return OK


def check_broker(url=None):
    """Return "ok" if the Celery broker accepts a connection within BROKER_TIMEOUT seconds,
    "not configured" when tasks run in-process, else "error" (see OutageLog)."""
    url = settings.CELERY_BROKER_URL if url is None else url
    if not url:
        return NOT_CONFIGURED
    timeouts = {"socket_timeout": BROKER_TIMEOUT, "socket_connect_timeout": BROKER_TIMEOUT}
    try:
        with Connection(url, connect_timeout=BROKER_TIMEOUT, transport_options=timeouts) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT)
    except Exception as error:  # kombu raises its own, redis' and socket errors alike
        broker_outages.failed(error)
        return ERROR
    broker_outages.answered()
    return OK


def check_health():
    """Return {"status", "database", "broker"}: status is "error" if any check failed."""
    checks = {"database": check_database(), "broker": check_broker()}
    return {"status": ERROR if ERROR in checks.values() else OK, **checks}


@never_cache
def healthz(request):
    """200 with each dependency's state when all work, 503 when one does not."""
    health = check_health()
    response = JsonResponse(health, status=200 if health["status"] == OK else 503)
    # The outage logs above say it once a minute; Django would log every 503 probe as an error.
    response._has_been_logged = True
    return response
