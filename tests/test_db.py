"""The database helpers below the models."""

from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tracker.db import update_each
from tracker.models import Source

pytestmark = pytest.mark.django_db

TRACKER = Path(__file__).resolve().parent.parent / "tracker"


def test_update_each_writes_each_row_its_own_values_in_one_round_trip():
    first = Source.objects.create(url="https://a.example.org/")
    second = Source.objects.create(url="https://b.example.org/")
    first.consecutive_failures, first.last_error = 2, "HTTP 500"
    second.consecutive_failures, second.last_error = 0, ""
    second.url = "https://changed.example.org/"  # not among the fields saved
    with CaptureQueriesContext(connection) as queries:
        update_each([first, second], ["consecutive_failures", "last_error"])
    assert len(queries) == 1
    assert list(
        Source.objects.order_by("pk").values_list("url", "consecutive_failures", "last_error")
    ) == [
        ("https://a.example.org/", 2, "HTTP 500"),
        ("https://b.example.org/", 0, ""),
    ]


def test_update_each_with_nothing_to_write_sends_nothing():
    with CaptureQueriesContext(connection) as queries:
        update_each([], ["last_error"])
    assert not queries


def test_one_module_writes_rows_with_executemany():
    """One copy of the one-UPDATE-per-row helper: the others call it."""
    writers = sorted(
        str(path.relative_to(TRACKER))
        for path in TRACKER.rglob("*.py")
        if "executemany(" in path.read_text()
    )
    assert writers == ["db.py"]
