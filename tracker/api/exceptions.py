from django.db import DataError
from rest_framework.exceptions import ValidationError
from rest_framework.views import exception_handler


def handle_exception(exc, context):
    """DRF's handler, plus: a value the database cannot hold (an id beyond 64 bits, say)
    is the client's error, a 400, not a server error."""
    if isinstance(exc, OverflowError | DataError):
        exc = ValidationError({"detail": "A value in the request is out of range."})
    return exception_handler(exc, context)
