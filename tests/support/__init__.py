"""Helpers shared by test modules: a test module imports them from here, never from another
test module or from conftest.py (tests/test_suite.py checks). Fixtures live in tests/conftest.py.

- tests.support (this module): the import review page's form, as a browser posts it
- tests.support.pages: watched pages on a local test server (`page`, `Site`,
  `ConcurrencyProbe`, `local_url`)
- tests.support.workers: real Celery worker processes (`Worker`, `wait_until`)
- tests.support.outages: a Redis server to stop and start, Celery settings for a block
- tests.support.staff: staff roles, the admin's recommendation form, an API client
- tests.support.seeds: the shared seed documents (`SEEDS_DIR`, `read_seed`) and the import
  command
"""

from django.urls import reverse

from tracker.admin import REVIEWED_FIELDS


def review_url(proposal):
    return reverse("admin:tracker_importproposal_change", args=[proposal.pk])


def review_data(proposal, edits=None, *, button="_confirm"):
    """The review page's form as a browser posts it: every item as proposed, with `edits`
    ({code: {field: value}}) applied, and the button pressed."""
    edits = edits or {}
    data = {
        "form-TOTAL_FORMS": str(len(proposal.items)),
        "form-INITIAL_FORMS": str(len(proposal.items)),
        button: "1",
    }
    for number, item in enumerate(proposal.items):
        values = {
            "keep": item["keep"],
            "code": item["code"],
            "parent_key": item["parent_key"],
            "merge_into": item["merge_into"],
            "title": item["title"],
            "text": item["text"],
            "note": item["note"],
            "lead": item["lead"] or "",
            "supporting": "; ".join(item["supporting"]),
        } | edits.get(item["code"], {})
        assert set(values) == set(REVIEWED_FIELDS)
        for name, value in values.items():
            if name == "keep":
                if value:
                    data[f"form-{number}-keep"] = "on"
            else:
                data[f"form-{number}-{name}"] = value
    return data


def item_key(proposal, code):
    return next(item["key"] for item in proposal.items if item["code"] == code)
