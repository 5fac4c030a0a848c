"""Only http(s) URLs become links: a stored "javascript:" or "data:" URL is shown as text in
pages, feeds, digests and the admin (one rule, tracker/links.py)."""

import datetime
from html.parser import HTMLParser

import pytest
import time_machine
from django.urls import reverse

from tests.factories import (
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
    SubscriptionFactory,
)
from tracker import digests
from tracker.links import link_url
from tracker.models import ChangeAlert, FeedEntry, Source, SourceVersion

SCRIPT_URL = "javascript:alert(1)"
DATA_URL = "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="
WEB_URL = "https://news.example.org/story"
WEEK_45 = datetime.datetime(2026, 11, 2, 9, tzinfo=datetime.UTC)


class Hrefs(HTMLParser):
    """Every href (and src) in a page or mail, decoded as a browser or mail reader would."""

    def __init__(self, html):
        super().__init__()
        self.found = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found += [value for name, value in attrs if name in {"href", "src"}]


def unsafe(html):
    return [href for href in Hrefs(html).found if not link_url(href.strip()) and ":" in href]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/a", "https://example.org/a"),
        ("HTTP://example.org/a", "HTTP://example.org/a"),
        (SCRIPT_URL, ""),
        (" JavaScript:alert(1)", ""),
        ("java\tscript:alert(1)", ""),
        (DATA_URL, ""),
        ("vbscript:msgbox(1)", ""),
        ("//example.org/no-scheme", ""),
        ("http://[::1", ""),  # unparseable
        ("", ""),
        (None, ""),
    ],
)
def test_only_http_and_https_urls_may_be_links(url, expected):
    assert link_url(url) == expected


@pytest.fixture
def risky(db):
    """A published recommendation with a status change citing evidence with a script URL
    and an ordinary one, and new evidence (cited by no change) with a data URL."""
    document = DocumentFactory(code="WRC-2024")
    recommendation = RecommendationFactory(document=document, code="WRC-2024-1")
    with time_machine.travel(WEEK_45 + datetime.timedelta(days=1), tick=False):
        cited = [
            EvidenceFactory(title="Scripted report", url=SCRIPT_URL),
            EvidenceFactory(title="Real report", url=WEB_URL),
        ]
        recommendation.record_status(
            "in_progress", effective_on=datetime.date(2026, 11, 2), evidence=cited
        )
        EvidenceFactory(title="Data report", url=DATA_URL).recommendations.add(recommendation)
    return recommendation


def test_a_digest_mail_links_no_script_or_data_url(risky, smtp_server):
    with time_machine.travel(WEEK_45 - datetime.timedelta(days=10), tick=False):
        SubscriptionFactory(email="ana@example.org", documents=[risky.document])
    with time_machine.travel(WEEK_45 + datetime.timedelta(weeks=1), tick=False):
        assert digests.send_due_digests() == {"sent": 1}

    [message] = smtp_server.to("ana@example.org")
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert unsafe(html) == []
    assert WEB_URL in Hrefs(html).found
    for part in (html, text):
        # Listed with the status change and as new evidence, by title only.
        assert "Scripted report" in part and "Data report" in part
        assert "javascript:" not in part and "data:" not in part
    assert WEB_URL in text


def test_the_feed_links_no_script_or_data_url(risky, client):
    feed = client.get(reverse("public:feed_updates")).content.decode()

    assert "Scripted report" in feed
    assert "javascript:" not in feed and "data:text" not in feed
    assert f'&lt;a href="{WEB_URL}"&gt;Real report' in feed


def test_the_recommendation_page_shows_such_evidence_as_text(risky, client):
    html = client.get(risky.get_absolute_url()).content.decode()

    assert unsafe(html) == []
    assert ">Scripted report<" in html and ">Data report<" in html
    assert f'<a href="{WEB_URL}" rel="noopener noreferrer">Real report</a>' in html


def test_the_admin_links_no_script_or_data_url(risky, client, admin_user):
    client.force_login(admin_user)
    evidence_list = client.get(reverse("admin:tracker_evidence_changelist")).content.decode()
    assert unsafe(evidence_list) == []
    assert evidence_list.count('rel="noopener noreferrer">open</a>') == 1

    feed = Source.objects.create(url="https://example.org/feed", kind=Source.Kind.FEED)
    entry = FeedEntry.objects.create(source=feed, guid="x", link=SCRIPT_URL, title="Entry")
    page = client.get(reverse("admin:tracker_feedentry_accept", args=[entry.pk]))
    assert page.status_code == 200
    assert unsafe(page.content.decode()) == []
    assert "Entry" in page.content.decode()

    watched = Source.objects.create(url="https://example.org/page", title="Watched page")
    version = SourceVersion.objects.create(
        source=watched,
        content_hash="1",
        text="Text",
        url=DATA_URL,
        http_status=200,
        fetched_at=WEEK_45,
    )
    alert = ChangeAlert.objects.create(source=watched, version=version, diff="+ Text")
    page = client.get(reverse("admin:tracker_changealert_accept", args=[alert.pk]))
    assert page.status_code == 200
    assert unsafe(page.content.decode()) == []
    assert "Seen on Watched page" in page.content.decode()
