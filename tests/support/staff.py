"""Staff: their roles (groups), the admin's recommendation and source forms as a browser posts
them, and an API client signed in as scripts are."""

import importlib
from pathlib import Path
from types import SimpleNamespace

from django.apps import apps as global_apps
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]


def roles_migration():
    """The data migration that makes the roles (found by name: it may be renumbered)."""
    name = next((ROOT / "tracker" / "migrations").glob("*_roles.py")).stem
    return importlib.import_module(f"tracker.migrations.{name}")


def role(name):
    """The group the roles migration made; made again if a transactional test's flush
    emptied the tables since."""
    group = Group.objects.filter(name=name).first()
    if group is None:
        roles_migration().create_roles(global_apps, SimpleNamespace(connection=connection))
        group = Group.objects.get(name=name)
    return group


def owner_formset(recommendation, rows):
    data = {
        "ownerships-TOTAL_FORMS": str(len(rows)),
        "ownerships-INITIAL_FORMS": str(sum(1 for pk, _a, _r in rows if pk)),
        "ownerships-MIN_NUM_FORMS": "0",
        "ownerships-MAX_NUM_FORMS": "1000",
    }
    for index, (pk, agency, role) in enumerate(rows):
        prefix = f"ownerships-{index}-"
        data |= {
            f"{prefix}id": pk or "",
            f"{prefix}recommendation": recommendation.pk,
            f"{prefix}agency": agency.pk,
            f"{prefix}role": role,
        }
    return data


def change_form_data(recommendation, owners):
    empty_inline = {
        f"{name}-{field}": value
        for name in ["status_changes", "Evidence_recommendations"]
        for field, value in [
            ("TOTAL_FORMS", "0"),
            ("INITIAL_FORMS", "0"),
            ("MIN_NUM_FORMS", "0"),
            ("MAX_NUM_FORMS", "1000"),
        ]
    }
    return {
        "document": recommendation.document.pk,
        "code": recommendation.code,
        "position": 0,
        "title_en": recommendation.title,
        "text_en": recommendation.text,
        "addressed_to": recommendation.addressed_to,
        "weight": 1,
        "review_interval_days": 90,
        "is_published": "on",
        **empty_inline,
        **owner_formset(recommendation, owners),
    }


def api_as(user):
    """An API client authenticated the way scripts are: with the user's token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def source_form_data(source, **changes):
    """The admin's source form for `source`, as a browser posts it, with `changes`."""
    local = timezone.localtime(source.next_check_at)
    return {
        "url": source.url,
        "kind": source.kind,
        "title": source.title,
        "check_interval": "86400",
        "is_active": "on",
        "next_check_at_0": local.date().isoformat(),
        "next_check_at_1": local.time().replace(microsecond=0).isoformat(),
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
        **changes,
    }
