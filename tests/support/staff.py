"""What staff send: the admin's recommendation form as a browser posts it, and an API client
signed in as scripts are."""

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


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
        "title": recommendation.title,
        "text": recommendation.text,
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
