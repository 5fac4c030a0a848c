"""Oversized and malformed requests are refused clearly, and write nothing."""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import PublisherFactory, RecommendationFactory
from tests.support import review_data, review_url
from tracker import backup
from tracker.demo import DEMO_DIR
from tracker.directory import ensure_agency_directory
from tracker.models import Document, ImportProposal, StatusChange

pytestmark = pytest.mark.django_db
MB = 1024 * 1024


@pytest.fixture
def staff_api(admin_user):
    api = APIClient()
    api.force_authenticate(admin_user)
    return api


@pytest.fixture
def record_status_url():
    recommendation = RecommendationFactory(code="WRC-2024-1", is_published=True)
    return reverse("api:recommendation-record-status", args=[recommendation.pk])


def test_an_oversized_json_body_is_a_413_in_json(staff_api, record_status_url):
    body = json.dumps(
        {"status": "in_progress", "effective_on": "2024-08-01", "rationale": "x" * 3 * MB}
    )
    response = staff_api.post(record_status_url, body, content_type="application/json")
    assert response.status_code == 413
    assert "larger than the limit of 2097152 bytes" in response.json()["detail"]
    assert not StatusChange.objects.exists()


def test_an_oversized_form_body_is_a_413_in_json(staff_api, record_status_url):
    form = {"status": "in_progress", "effective_on": "2024-08-01", "rationale": "x" * 3 * MB}
    response = staff_api.post(record_status_url, form, format="multipart")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    response = staff_api.post(
        record_status_url,
        "&".join(f"f{n}=1" for n in range(3000)),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "The request has too many fields."
    assert not StatusChange.objects.exists()


def test_invalid_json_is_a_400_that_says_so(staff_api, record_status_url):
    response = staff_api.post(
        record_status_url, '{"status": "in_progress",', content_type="application/json"
    )
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_an_unsupported_content_type_is_a_415(staff_api, record_status_url):
    response = staff_api.post(record_status_url, "status=done", content_type="text/plain")
    assert response.status_code == 415
    assert 'Unsupported media type "text/plain"' in response.json()["detail"]


def test_a_normal_json_body_still_records(staff_api, record_status_url):
    response = staff_api.post(
        record_status_url,
        {"status": "in_progress", "effective_on": "2024-08-01", "rationale": "Announced."},
        format="json",
    )
    assert response.status_code == 201
    assert StatusChange.objects.count() == 1


def test_an_admin_form_with_too_many_fields_is_refused(admin_client):
    response = admin_client.post(
        reverse("admin:tracker_source_changelist"), {f"f{n}": "1" for n in range(2500)}
    )
    assert response.status_code == 400


# The admin's document upload.


def row_counts():
    return {m._meta.label_lower: m._default_manager.count() for m in backup.tracked_models()}


def upload(client, content, *, name="report.md", code="HILL-2021", **fields):
    form = {"code": code, "title": "Five steps", "file": SimpleUploadedFile(name, content)}
    form.update(fields)
    return client.post(reverse("admin:tracker_document_import"), form)


def test_staff_import_a_document_by_upload(admin_client):
    publisher = PublisherFactory(name="The Hill")
    list_page = admin_client.get(reverse("admin:tracker_document_changelist"))
    assert reverse("admin:tracker_document_import") in list_page.text
    form_page = admin_client.get(reverse("admin:tracker_document_import")).text
    assert 'enctype="multipart/form-data"' in form_page  # else browsers send no file
    content = (DEMO_DIR / "hill-2021.csv").read_bytes()
    response = upload(admin_client, content, name="hill.csv", publisher=publisher.pk)
    proposal = ImportProposal.objects.get()
    assert response.status_code == 302 and response["Location"] == review_url(proposal)
    response = admin_client.post(review_url(proposal), review_data(proposal))
    document = Document.objects.get(code="HILL-2021")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:tracker_document_change", args=[document.pk])
    assert (
        document.recommendations.count() == len(list(csv.reader(io.StringIO(content.decode())))) - 1
    )
    assert document.publisher == publisher


def test_an_upload_writes_nothing_but_its_proposal_until_confirmed(admin_client):
    publisher = PublisherFactory(name="The Hill")
    ensure_agency_directory()
    before = row_counts()
    content = (DEMO_DIR / "hill-2021.csv").read_bytes()
    response = upload(admin_client, content, name="h.csv", publisher=publisher.pk)
    assert response.status_code == 302
    assert row_counts() == before | {"tracker.importproposal": 1}


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (b"# Report\n\n" + b"Words and more words.\n" * (21 * MB // 22), "big.md",
         "This file is 21.0 MB; documents are limited to 20 MB."),
        (b"%PDF-1.7 damaged", "report.pdf", "report.pdf is not a readable PDF"),
        (b"PK\x03\x04 damaged", "report.docx", "report.docx is not a readable Word document"),
        (b"\x89PNG\r\n\x1a\n", "picture.png", "Upload a .pdf, .docx,"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "picture.md",
         "This is a binary file, not a text document."),
        ("## 1. Caf\u00e9 policy should change".encode("latin-1"), "latin.md",
         "This file is not UTF-8 text"),
        (b"", "empty.md", "The submitted file is empty."),
        (b"Just a paragraph, with no numbered sections.", "plain.md",
         "No recommendations were found"),
        (b"code,text\nHILL-2021-1,\n", "rows.csv", "Row 2: code and text are required."),
    ],
    ids=["oversized", "corrupt-pdf", "corrupt-docx", "other-type", "binary", "not-utf8", "empty",
         "no-sections", "bad-csv-row"],
)  # fmt: skip
def test_a_refused_upload_shows_why_and_writes_nothing(admin_client, content, name, reason):
    PublisherFactory(name="The Hill")
    before = row_counts()
    response = upload(admin_client, content, name=name)
    assert response.status_code == 200
    assert reason in response.text
    assert row_counts() == before


def test_an_import_that_fails_midway_writes_nothing(admin_client):
    publisher = PublisherFactory(name="The Hill")
    before = row_counts()
    content = b"code,text,lead_agency\nHILL-2021-1,The agency should act.,Nobody Agency\n"
    response = upload(admin_client, content, name="owners.csv", publisher=publisher.pk)
    assert response.status_code == 200
    assert "Nobody Agency" in response.text
    assert row_counts() == before


def test_staff_without_import_rights_cannot_upload(client, viewer):
    client.force_login(viewer)
    response = upload(client, b"code,text\n")
    assert response.status_code == 403
