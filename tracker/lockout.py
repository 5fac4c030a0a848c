"""The page a refused login gets once django-axes has locked out an account and address.

Axes counts failed logins per (username, address) and, past TRACKER_LOGIN_FAILURE_LIMIT,
refuses that pair for TRACKER_LOGIN_LOCKOUT_MINUTES; it calls `lockout_response` (the
AXES_LOCKOUT_CALLABLE setting) for the answer. Staff unlock early by deleting the attempt in
the admin ("Access attempts") or with `manage.py axes_reset_username USERNAME`.
"""

import math

from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.contrib import admin
from django.db.models import Max
from django.shortcuts import render
from django.utils import timezone

from .clients import client_ip


def lockout_ends_at(request, *, username):
    """Return when `username` may log in again from this request's address: the lockout
    time after the last failure that counted (attempts made while locked out do not count)."""
    last_failure = AccessAttempt.objects.filter(
        username=username, ip_address=client_ip(request)
    ).aggregate(last=Max("attempt_time"))["last"]
    return (last_failure or timezone.now()) + get_cool_off(request)


def lockout_response(request, original_response=None, credentials=None):
    """Return a 429 page in the admin's look: who is locked out, until when, and that an
    administrator can unlock sooner. Retry-After says the same to a program."""
    username = get_client_username(request, credentials) or ""
    ends_at = lockout_ends_at(request, username=username)
    seconds = max(1, math.ceil((ends_at - timezone.now()).total_seconds()))
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "username": username,
        "failure_limit": get_failure_limit(request, credentials),
        "retry_at": ends_at,
        "minutes": math.ceil(seconds / 60),
    }
    response = render(request, "admin/tracker/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
