"""One log line per request, with a request id that every log line written for it carries.

Imported by the logging configuration, before the apps are ready: keep models out of it.
"""

import contextvars
import logging
import re
import time
import uuid

logger = logging.getLogger("tracker.requests")

# The id of the request being served, for every log line written while serving it.
current_request_id = contextvars.ContextVar("current_request_id", default=None)
# An id a proxy passed on (X-Request-ID) is kept when it looks like one; else we make one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Paths polled by load balancers and the container's health check: logged at DEBUG only.
QUIET_PATHS = {"/healthz"}


class RequestIdFilter(logging.Filter):
    """Add `request_id` to log records written while a request is served."""

    def filter(self, record):
        request_id = current_request_id.get()
        if request_id is not None:
            record.request_id = request_id
        return True


class RequestLogMiddleware:
    """Log one line per request (id, method, path, status, duration) and answer with the id
    in X-Request-ID."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = request_id
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            fields = {
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            }
            level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
            logger.log(
                level,
                "%s %s %s %sms",
                request.method,
                request.path,
                response.status_code,
                duration_ms,
                extra=fields,
            )
            response["X-Request-ID"] = request_id
            return response
        finally:
            current_request_id.reset(token)


class ApiLanguageMiddleware:
    """Let an API client choose the content's language with `?lang=es` (else its
    Accept-Language, as LocaleMiddleware, which must come before, decided)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings
        from django.utils import translation

        language = request.GET.get("lang", "")
        if request.path.startswith("/api/") and language in dict(settings.LANGUAGES):
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)
