"""Content-Security-Policy: each kind of page says what a browser may load and run on it.

The browser tests (tests/test_browser.py) check that the pages still work under these
policies: any violation Chromium reports fails them.
"""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import EvidenceFactory, RecommendationFactory
from tracker.models import Source, SourceVersion


def policy_of(response):
    """The response's policy as {directive: [values]}."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def runs_no_script(policy):
    return policy["script-src"] == ["'none'"]


def runs_only_script_files(policy):
    return policy["script-src"] == ["'self'"]


@pytest.fixture
def published(db):
    recommendation = RecommendationFactory()
    evidence = EvidenceFactory(url="https://news.example.org/story")
    recommendation.record_status(
        "in_progress", effective_on=timezone.localdate(), evidence=[evidence], rationale="Seen."
    )
    return recommendation


@pytest.fixture
def kept_copy(published):
    evidence = published.status_changes.get().evidence.get()
    source = Source.objects.create(url=evidence.url, title="The story")
    return SourceVersion.objects.create(
        source=source,
        content_hash="1",
        title="The story",
        text='<script>alert("kept")</script> What the story said.',
        url=source.url,
        http_status=200,
        fetched_at=timezone.now(),
    )


def test_public_pages_allow_no_script_and_only_our_stylesheet(client, published):
    for url in [
        "/",
        published.document.get_absolute_url(),
        published.get_absolute_url(),
        reverse("public:agencies"),
        reverse("public:search") + "?q=story",
        reverse("public:subscribe"),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = policy_of(response)
        assert runs_no_script(policy), url
        assert policy["default-src"] == ["'none'"], url
        assert policy["style-src"] == ["'self'"], url
        assert policy["frame-ancestors"] == ["'none'"], url
        assert "style-src-attr" not in policy, url


def test_public_pages_need_no_inline_style_or_script(client, published):
    """What the policy forbids, the pages do not use: no <script>, no <style>, no style=."""
    for url in ["/", published.document.get_absolute_url(), reverse("public:subscribe")]:
        html = client.get(url).content.decode()
        assert "<script" not in html, url
        assert "<style" not in html, url
        assert not re.search(r"\sstyle=", html), url


def test_a_page_that_is_not_found_carries_the_public_policy(client, db):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert runs_no_script(policy_of(response))


def test_kept_copies_get_the_strictest_policy_and_a_sandbox(client, kept_copy):
    response = client.get(reverse("public:source_version", args=[kept_copy.pk]))

    assert response.status_code == 200
    policy = policy_of(response)
    assert policy["default-src"] == ["'none'"]
    assert runs_no_script(policy)
    # Sandboxed without allow-same-origin or allow-scripts: an opaque origin, no script.
    assert policy["sandbox"] == ["allow-forms"]
    assert "<script>alert" not in response.content.decode()


def test_the_admin_runs_only_its_script_files(client, admin_user):
    login = client.get(reverse("admin:login"))
    assert runs_only_script_files(policy_of(login))

    client.force_login(admin_user)
    for url in [reverse("admin:index"), reverse("admin:tracker_recommendation_add")]:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = policy_of(response)
        assert runs_only_script_files(policy), url
        assert policy["frame-ancestors"] == ["'none'"], url


def test_the_api_docs_run_swagger_ui_from_files_only(client, db):
    response = client.get(reverse("api-docs"))

    assert response.status_code == 200
    policy = policy_of(response)
    assert runs_only_script_files(policy)
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    html = response.content.decode()
    # Every script is a file, the start-up one included, and no <style> block is left.
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert len(scripts) == 3
    assert all("src=" in attributes for attributes in scripts)
    assert "<style" not in html
    start_up = re.search(r'<script src="([^"]*script=[^"]*)"', html).group(1)
    script = client.get(start_up.replace("&amp;", "&"))
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_the_browsable_api_runs_only_its_script_files(client, published):
    response = client.get("/api/v1/recommendations/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert runs_only_script_files(policy_of(response))


def test_an_operator_can_collect_violation_reports(client, db, settings):
    settings.TRACKER_CSP_REPORT_URI = "https://reports.example.org/csp"

    policy = policy_of(client.get("/"))

    assert policy["report-uri"] == ["https://reports.example.org/csp"]
    assert runs_no_script(policy)
