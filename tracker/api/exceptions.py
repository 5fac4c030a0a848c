from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import DataError
from django.db.models import ProtectedError
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.views import exception_handler

from .parsers import RequestTooLarge


class Protected(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This is referred to by the status history, which is never deleted."
    default_code = "protected"


def handle_exception(exc, context):
    """DRF's handler, plus: a value the database cannot hold (an id beyond 64 bits, say)
    is the client's error, a 400; deleting what history refers to is a 409; a body over the
    size limit is a 413 and one with too many fields a 400, in JSON like any other error."""
    if isinstance(exc, OverflowError | DataError):
        exc = ValidationError({"detail": "A value in the request is out of range."})
    elif isinstance(exc, ProtectedError):
        exc = Protected()
    elif isinstance(exc, RequestDataTooBig):  # a form body over Django's limit
        exc = RequestTooLarge()
    elif isinstance(exc, TooManyFieldsSent):
        exc = ParseError("The request has too many fields.")
    return exception_handler(exc, context)
