"""Digests: what they say, when they go, and that each subscriber gets one per period, sent
through a real SMTP server on 127.0.0.1 and read back with the `email` package."""

import datetime
import io
import os
import re
import threading
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from django.utils import timezone, translation
from django_celery_beat.models import PeriodicTask

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
    SubscriptionFactory,
    UserFactory,
)
from tests.support.workers import wait_until
from tracker import digests, emails
from tracker.labels import STATUS_LABELS
from tracker.models import (
    ChangeAlert,
    DigestDelivery,
    Source,
    SourceVersion,
    Subscription,
)
from tracker.tasks import send_digest_task, send_due_digests_task

UTC = datetime.UTC
BASE_URL = "http://127.0.0.1:8000"
# Monday of ISO week 2026-W45, and the weeks after it.
WEEK_45 = datetime.datetime(2026, 11, 2, 9, tzinfo=UTC)
WEEK_46 = WEEK_45 + datetime.timedelta(weeks=1)
WEEK_47 = WEEK_45 + datetime.timedelta(weeks=2)


def at(moment):
    return time_machine.travel(moment, tick=False)


@pytest.fixture
def document(db, uscis):
    document = DocumentFactory(code="WRC-2024", title="Migration does not start at the border")
    RecommendationFactory(
        document=document, code="WRC-2024-1", title="Expand refugee processing", lead=uscis
    )
    RecommendationFactory(
        document=document, code="WRC-2024-2", title="Restore family reunification", lead=uscis
    )
    RecommendationFactory(
        document=document, code="WRC-2024-3", title="A draft ask", is_published=False, lead=uscis
    )
    return document


def rec(code):
    return digests.Recommendation.objects.get(code=code)


def record(code, status, *, title="Processing expands", effective_on=None):
    evidence = EvidenceFactory(title=title)
    recommendation = rec(code)
    recommendation.record_status(
        status,
        effective_on=effective_on or datetime.date(2026, 10, 1),
        evidence=[evidence],
    )
    return evidence


def parts(message):
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


class Links(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.hrefs = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def app_links(html):
    return [href for href in Links(html).hrefs if href.startswith(BASE_URL)]


def assert_links_resolve(client, html, *, external):
    """Every link on the app resolves to one of its views and answers 200; the others are
    exactly the evidence's own URLs."""
    hrefs = Links(html).hrefs
    assert hrefs
    for href in hrefs:
        if not href.startswith(BASE_URL):
            assert href in external, href
            continue
        path = urlsplit(href).path
        resolve(path)
        assert client.get(path).status_code == 200, href


# -- Content and headers ------------------------------------------------------------------


def test_a_status_change_reaches_the_subscriber_with_evidence_progress_and_headers(
    document, smtp_server, client
):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        subscriber = SubscriptionFactory(email="ana@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=2)):
        evidence = record("WRC-2024-1", "implemented", title="Refugee processing opens")
    with at(WEEK_46):
        outcomes = digests.send_due_digests()

    assert outcomes == {"sent": 1}
    [message] = smtp_server.to("ana@example.org")
    assert message["Subject"] == "Tracker digest: week of 2 November 2026"
    assert message["From"] == "Tracker <tracker@localhost>"
    unsubscribe_url = digests.subscription_links(subscriber)["unsubscribe_url"]
    assert message["List-Unsubscribe"].strip() == f"<{unsubscribe_url}>"
    assert unsubscribe_url.startswith(f"{BASE_URL}/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = parts(message)
    for part in (text, html):
        assert "WRC-2024-1" in part
        assert "Implemented (first status recorded), effective 1 October 2026" in part
        assert "last verified 4 November 2026" in part  # the day it was recorded
        assert "1 of 2 recommendations implemented · 1 assessed" in part
        assert "Refugee processing opens" in part
        assert "Migration does not start at the border" in part
        assert "50%" in part  # one of two published recommendations implemented
        assert "WRC-2024-3" not in part  # drafts stay private
    assert "[##########----------] 50%" in text
    assert "width: 50%" in html
    assert evidence.url in Links(html).hrefs

    delivery = DigestDelivery.objects.get()
    assert (delivery.state, delivery.period, delivery.attempts) == ("sent", "2026-W45", 1)
    assert delivery.message_id == message["Message-ID"]
    subscriber.refresh_from_db()
    assert subscriber.last_period == "2026-W45"


def test_every_link_in_a_digest_resolves_in_the_app(document, uscis, smtp_server, client):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document], agencies=[uscis])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        first = record("WRC-2024-1", "in_progress")
        second = record("WRC-2024-2", "partial", title="Reunification resumes")
        context_only = EvidenceFactory(title="Background reading")
        context_only.recommendations.add(rec("WRC-2024-2"))
    with at(WEEK_46):
        digests.send_due_digests()

    [message] = smtp_server.messages
    _text, html = parts(message)
    assert_links_resolve(client, html, external={first.url, second.url, context_only.url})
    paths = {urlsplit(href).path for href in app_links(html)}
    assert "/documents/WRC-2024/recommendations/WRC-2024-1/" in paths
    assert document.get_absolute_url() in paths
    assert uscis.get_absolute_url() in paths


def test_subscribers_with_the_same_digest_each_get_their_own_links(document, smtp_server, client):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        ana = SubscriptionFactory(email="ana@example.org", documents=[document])
        ben = SubscriptionFactory(email="ben@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "in_progress", title="First step")
    with at(WEEK_46):
        assert digests.send_due_digests() == {"sent": 2}

    bodies = {}
    for subscriber in (ana, ben):
        [message] = smtp_server.to(subscriber.email)
        text, html = parts(message)
        links = digests.subscription_links(subscriber)
        for link in links.values():
            assert link in text and link in Links(html).hrefs
        assert "placeholder" not in text + html
        for link in links.values():
            html = html.replace(link, "LINK")
        bodies[subscriber.email] = html
    assert bodies["ana@example.org"] == bodies["ben@example.org"]  # the rest is shared
    ana_unsubscribe = digests.subscription_links(ana)["unsubscribe_url"]
    client.post(urlsplit(ana_unsubscribe).path)
    ana.refresh_from_db()
    ben.refresh_from_db()
    assert ana.unsubscribed_at is not None and ben.unsubscribed_at is None


def test_a_digest_covers_only_what_happened_since_the_previous_one(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "in_progress", title="First step")
    with at(WEEK_46):
        digests.send_due_digests()
    with at(WEEK_46 + datetime.timedelta(days=3)):
        record("WRC-2024-2", "stalled", title="Second step")
    with at(WEEK_47):
        digests.send_due_digests()

    first, second = (parts(message)[0] for message in smtp_server.messages)
    assert "First step" in first and "Second step" not in first
    assert "Second step" in second and "First step" not in second
    assert "Stalled (first status recorded)" in second


def test_following_an_agency_includes_its_sub_agencies(db, smtp_server):
    dhs = AgencyFactory(name="Department of Homeland Security", acronym="DHS")
    cbp = AgencyFactory(name="Customs and Border Protection", acronym="CBP", parent=dhs)
    other = AgencyFactory(name="Department of State", acronym="State")
    RecommendationFactory(code="A-1", title="Border ask", lead=cbp)
    RecommendationFactory(code="B-1", title="Diplomacy ask", lead=other)
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", agencies=[dhs])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("A-1", "implemented")
        record("B-1", "implemented")
    with at(WEEK_46):
        digests.send_due_digests()

    [message] = smtp_server.messages
    text, _html = parts(message)
    assert "A-1" in text and "B-1" not in text
    assert "Department of Homeland Security" in text  # its progress bar


def test_an_agency_s_progress_in_a_digest_counts_its_sub_agencies(db, smtp_server):
    dhs = AgencyFactory(name="Department of Homeland Security", acronym="DHS")
    cbp = AgencyFactory(name="Customs and Border Protection", acronym="CBP", parent=dhs)
    RecommendationFactory(code="A-1", title="Border ask", lead=cbp)
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", agencies=[dhs])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("A-1", "implemented")
    with at(WEEK_46):
        digests.send_due_digests()

    [message] = smtp_server.messages
    text, _html = parts(message)
    progress = text[text.index("Department of Homeland Security") :]
    assert "100% · 1 of 1 recommendation implemented" in progress


def test_a_busy_week_lists_the_first_changes_and_counts_the_rest(document, smtp_server, client):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        for n in range(emails.MAX_LISTED + 5):
            record(f"WRC-2024-{n % 2 + 1}", "in_progress", title=f"Report {n:02d}")
    with at(WEEK_46):
        digests.send_due_digests()

    text, html = parts(smtp_server.messages[0])
    for part in (text, html):
        assert f"Report {emails.MAX_LISTED - 1:02d}" in part
        assert f"Report {emails.MAX_LISTED:02d}" not in part
        assert "And 5 more status changes on the tracker" in part
    assert_links_resolve(
        client, html, external=set(digests.Evidence.objects.values_list("url", flat=True))
    )


def test_nothing_happened_sends_nothing_unless_the_setting_says_so(document, smtp_server, settings):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document])
    with at(WEEK_46):
        assert digests.send_due_digests() == {"skipped": 1}
        assert digests.send_due_digests() == {}  # the period is done
    assert smtp_server.messages == []
    assert DigestDelivery.objects.get().state == "skipped"

    settings.TRACKER_DIGEST_SEND_EMPTY = True
    with at(WEEK_47):
        assert digests.send_due_digests() == {"sent": 1}
    _text, html = parts(smtp_server.messages[0])
    assert "No status changes and no new evidence this time." in html


def test_unconfirmed_and_unsubscribed_subscribers_get_nothing(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="new@example.org", documents=[document], confirmed_at=None)
        gone = SubscriptionFactory(email="gone@example.org", documents=[document])
        digests.unsubscribe(gone)
        SubscriptionFactory(email="stays@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
    with at(WEEK_46):
        digests.send_due_digests()

    assert [message["To"] for message in smtp_server.messages] == ["stays@example.org"]


def test_a_subscriber_confirmed_after_the_period_waits_for_the_next(document, smtp_server):
    with at(WEEK_46 + datetime.timedelta(hours=1)):
        SubscriptionFactory(email="late@example.org", documents=[document], confirmed_at=WEEK_46)
        record("WRC-2024-1", "implemented")
        assert digests.send_due_digests() == {}
    with at(WEEK_47):
        assert digests.send_due_digests() == {"sent": 1}


def test_monthly_subscribers_get_the_calendar_month(document, smtp_server):
    with at(datetime.datetime(2026, 9, 20, tzinfo=UTC)):
        SubscriptionFactory(email="m@example.org", documents=[document], frequency="monthly")
    with at(datetime.datetime(2026, 10, 15, tzinfo=UTC)):
        record("WRC-2024-1", "implemented")
    with at(datetime.datetime(2026, 10, 31, 23, tzinfo=UTC)):
        assert digests.send_due_digests() == {"skipped": 1}  # September: nothing happened
    with at(datetime.datetime(2026, 11, 1, 0, 30, tzinfo=UTC)):
        assert digests.send_due_digests() == {"sent": 1}
    assert smtp_server.messages[0]["Subject"] == "Tracker digest: October 2026"
    assert DigestDelivery.objects.filter(state="sent").get().period == "2026-10"


def test_periods_follow_the_site_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    # Monday 02:00 UTC is still Sunday evening in New York: week 45 is under way there.
    now = datetime.datetime(2026, 11, 9, 2, tzinfo=UTC)
    assert digests.digest_period("weekly", now=now).key == "2026-W44"
    assert digests.digest_period("weekly", now=now, current=True).key == "2026-W45"
    assert digests.parse_period("2026-W45") == digests.digest_period(
        "weekly", now=now, current=True
    )
    assert digests.parse_period("2026-02").end == datetime.date(2026, 2, 28)


def test_a_spanish_subscriber_gets_the_digest_in_spanish(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="lucia@example.org", documents=[document], language="es")
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
    with at(WEEK_46):
        digests.send_due_digests()

    [message] = smtp_server.messages
    with translation.override("es"):
        implemented = str(STATUS_LABELS["implemented"])
    assert implemented != "Implemented"
    assert "noviembre" in message["Subject"] and "digest" not in message["Subject"]
    text, html = parts(message)
    assert f"{implemented} " in text and f"{implemented} " in html
    assert "Status changes" not in text
    assert "Lo que se registró en el seguimiento del 24 agosto 2026" in text
    assert "(primer estado registrado), con efecto el 1 octubre 2026" in text
    assert 'lang="es"' in html


# -- Movement: from → to, progress since the last digest, the window -----------------------


def visible_text(html):
    """The HTML part's text as a reader sees it, whitespace collapsed."""

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.chunks = []

        def handle_data(self, data):
            self.chunks.append(data)

    parser = Text()
    parser.feed(html.split("<body", 1)[1])
    return " ".join(" ".join(parser.chunks).split())


def read_both(message):
    """(text part, HTML part's visible text), each with its whitespace collapsed."""
    text, html = parts(message)
    return " ".join(text.split()), visible_text(html)


def test_each_status_change_shows_the_status_it_moved_from(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document])
        record("WRC-2024-1", "in_progress", effective_on=datetime.date(2026, 10, 1))
    with at(WEEK_45 + datetime.timedelta(days=2)):
        record("WRC-2024-1", "implemented", effective_on=datetime.date(2026, 11, 1))
        record("WRC-2024-2", "partial", effective_on=datetime.date(2026, 11, 3))
    with at(WEEK_46):
        digests.send_due_digests()

    [message] = smtp_server.messages
    for part in read_both(message):
        assert "In progress → Implemented, effective 1 November 2026" in part
        assert "Partially implemented (first status recorded), effective 3 November 2026" in part


def test_a_change_from_before_the_document_reads_as_background(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=2)):  # the document is of 1 July 2024
        record("WRC-2024-1", "stalled", effective_on=datetime.date(2019, 3, 12))
        record("WRC-2024-2", "partial", effective_on=datetime.date(2026, 11, 3))
    with at(WEEK_46):
        digests.send_due_digests()

    [message] = smtp_server.messages
    for part in read_both(message):
        assert (
            "Stalled (first status recorded), effective 12 March 2019 "
            "(background: before the document of 1 July 2024)"
        ) in part
        assert part.count("background: before the document") == 1


def test_a_backdated_correction_shows_the_status_it_replaced(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document])
        record("WRC-2024-1", "in_progress", effective_on=datetime.date(2026, 10, 1))
        record("WRC-2024-1", "implemented", effective_on=datetime.date(2026, 10, 20))
    with at(WEEK_45 + datetime.timedelta(days=2)):
        # Recorded now, it took effect between the two: it follows "In progress".
        record("WRC-2024-1", "partial", effective_on=datetime.date(2026, 10, 10))
    with at(WEEK_46):
        digests.send_due_digests()

    for part in read_both(smtp_server.messages[0]):
        assert "In progress → Partially implemented, effective 10 October 2026" in part


def progress_row(part, name, movement):
    """Whether `part` shows the progress row of `name` with `movement` under its bar."""
    row = r" (\[[#-]+\] )?\d+% · \d+ of \d+ recommendations? implemented · \d+ assessed "
    return re.search(re.escape(name) + row + re.escape(movement), part) is not None


def test_progress_shows_how_far_it_moved_since_the_previous_digest(document, uscis, smtp_server):
    other = DocumentFactory(code="OTH-2025", title="A quieter document")
    RecommendationFactory(document=other, code="OTH-2025-1", title="Quiet ask")
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document, other], agencies=[uscis])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
        record("OTH-2025-1", "implemented", title="Quiet step")
    with at(WEEK_46):
        digests.send_due_digests()
    with at(WEEK_46 + datetime.timedelta(days=2)):
        record("WRC-2024-2", "implemented", title="Reunification resumes")
    with at(WEEK_47):
        digests.send_due_digests()

    first, second = smtp_server.messages
    for part in read_both(first):  # a first digest has nothing to compare with
        assert "50%" in part and " since " not in part
    for part in read_both(second):
        moved = "50% → 100% (+50 points) since 9 November 2026"
        assert progress_row(part, "Migration does not start at the border", moved)
        assert progress_row(part, str(uscis), moved)
        assert progress_row(part, "A quieter document", "No change since 9 November 2026")


def test_progress_movement_counts_what_was_recorded_since_even_if_dated_before(
    document, smtp_server
):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="ana@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
        record("WRC-2024-2", "partial")
    with at(WEEK_46):
        digests.send_due_digests()
    with at(WEEK_46 + datetime.timedelta(days=2)):
        # Learnt this week, it took effect during the previous digest's week.
        record("WRC-2024-2", "reversed", effective_on=datetime.date(2026, 11, 4))
    with at(WEEK_47):
        digests.send_due_digests()

    for part in read_both(smtp_server.messages[1]):
        assert "Partially implemented → Reversed, effective 4 November 2026" in part
        assert "75% → 50% (\u221225 points) since 9 November 2026" in part


def test_a_whole_run_shows_progress_since_while_others_are_not_due(document, smtp_server):
    # Over 500 due, a run reads every active subscriber's previous digest, due or not.
    with at(WEEK_45 - datetime.timedelta(days=10)):
        weekly = Subscription.objects.bulk_create(
            Subscription(email=f"w{n}@example.org", confirmed_at=timezone.now()) for n in range(501)
        )
        Subscription.documents.through.objects.bulk_create(
            Subscription.documents.through(subscription=s, document=document) for s in weekly
        )
        SubscriptionFactory(email="m@example.org", documents=[document], frequency="monthly")
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
    with at(WEEK_46):  # the monthly subscriber's October: nothing happened, skipped
        assert digests.send_due_digests() == {"sent": 501, "skipped": 1}
    with at(WEEK_46 + datetime.timedelta(days=2)):
        record("WRC-2024-2", "implemented", title="Reunification resumes")
    with at(WEEK_47):
        assert digests.send_due_digests() == {"sent": 501}

    [message] = smtp_server.to("w500@example.org")[1:]
    for part in read_both(message):
        moved = "50% → 100% (+50 points) since 9 November 2026"
        assert progress_row(part, "Migration does not start at the border", moved)


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_run_lets_go_of_what_each_finished_batch_read(
    document, smtp_server, monkeypatch, dry_run
):
    # So that memory stays flat in the number of subscribers: a run holds every due
    # subscription until it ends, but not the documents and agencies read for each batch.
    with at(WEEK_45 - datetime.timedelta(days=10)):
        for n in range(5):
            SubscriptionFactory(email=f"s{n}@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "in_progress")
    held = []
    due_subscriptions = digests.due_subscriptions

    def keep(**kwargs):
        held.extend(due_subscriptions(**kwargs))
        return held

    monkeypatch.setattr(digests, "due_subscriptions", keep)
    with at(WEEK_46):
        outcomes = digests.send_due_digests(batch_size=2, dry_run=dry_run)

    assert outcomes == ({"would send": 5} if dry_run else {"sent": 5})
    assert len(held) == 5
    assert not [s for s, _period in held if getattr(s, "_prefetched_objects_cache", None)]


def test_the_period_line_names_the_days_of_what_is_listed(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(
            email="ana@example.org", documents=[document], confirmed_at=timezone.now()
        )
    with at(WEEK_45):
        record("WRC-2024-1", "in_progress", effective_on=WEEK_45.date())
    with at(datetime.datetime(2026, 11, 8, 23, 59, tzinfo=UTC)):
        last_minute = datetime.date(2026, 11, 8)
        record("WRC-2024-1", "implemented", title="Last minute", effective_on=last_minute)
    with at(datetime.datetime(2026, 11, 9, 0, 1, tzinfo=UTC)):  # the next week
        next_week = datetime.date(2026, 11, 9)
        record("WRC-2024-2", "partial", title="Next week already", effective_on=next_week)
    with at(WEEK_46 + datetime.timedelta(hours=1)):
        digests.send_due_digests()

    [message] = smtp_server.messages
    for part in read_both(message):
        assert (
            "What was recorded on the tracker from 23 October 2026 to 8 November 2026 about "
            "what you follow." in part
        )
        assert "Last minute" in part and "Next week already" not in part
        assert "took effect" not in part  # all took effect within those days


def test_changes_recorded_today_but_dated_earlier_say_when_they_took_effect(document, smtp_server):
    # The digest that said "from 2 December to 2 December" above items of 20 and 30 November:
    # it lists what was recorded since the subscriber joined; the changes are older.
    joined = datetime.datetime(2026, 12, 2, 8, tzinfo=UTC)
    with at(joined):
        SubscriptionFactory(email="ana@example.org", documents=[document], confirmed_at=joined)
    with at(joined + datetime.timedelta(hours=2)):
        record("WRC-2024-1", "in_progress", effective_on=datetime.date(2026, 11, 20))
        record("WRC-2024-2", "implemented", effective_on=datetime.date(2026, 11, 30))
    with at(joined + datetime.timedelta(hours=4)):
        assert digests.send_due_digests(current=True) == {"sent": 1}

    for part in read_both(smtp_server.messages[0]):
        assert (
            "What was recorded on the tracker on 2 December 2026 about what you follow. "
            "The status changes took effect from 20 November 2026 to 30 November 2026." in part
        )
        assert "effective 20 November 2026" in part and "effective 30 November 2026" in part


def test_queries_for_progress_movement_do_not_grow_with_subscribers(document, uscis, smtp_server):
    def run_for(count, moment):
        with at(moment - datetime.timedelta(weeks=2)):
            subscribers = [
                SubscriptionFactory(
                    email=f"{count}-{n}@example.org", documents=[document], agencies=[uscis]
                )
                for n in range(count)
            ]
        with at(moment - datetime.timedelta(weeks=1, days=5)):
            record("WRC-2024-1", "in_progress", title=f"Start {count}")
        with at(moment - datetime.timedelta(weeks=1)):
            assert digests.send_due_digests()["sent"] == count
        with at(moment - datetime.timedelta(days=5)):
            record("WRC-2024-1", "implemented" if count < 10 else "partial", title=f"{count}")
        with at(moment), CaptureQueriesContext(connection) as queries:
            assert digests.send_due_digests()["sent"] == count
        Subscription.objects.filter(pk__in=[s.pk for s in subscribers]).update(
            unsubscribed_at=moment
        )
        return len(queries), smtp_server.messages[-1]

    few, message = run_for(3, WEEK_46)
    assert "since 2 November 2026" in read_both(message)[0]
    many, message = run_for(30, WEEK_47 + datetime.timedelta(weeks=1))
    assert "since 16 November 2026" in read_both(message)[0]
    assert few == many


# -- Staff digests ------------------------------------------------------------------------


def test_staff_digests_list_waiting_work_by_lead_agency(document, uscis, smtp_server, client):
    with at(WEEK_45 - datetime.timedelta(days=200)):
        editor = UserFactory(username="staffer", is_staff=True, is_superuser=True)
        SubscriptionFactory(email="staff@example.org", user=editor, documents=[document])
        SubscriptionFactory(email="public@example.org", documents=[document])
        overdue = rec("WRC-2024-2")
        overdue.review_interval_days = 30
        overdue.last_reviewed_on = (WEEK_45 - datetime.timedelta(days=60)).date()
        overdue.save()
        watched = Source.objects.create(url="https://www.uscis.gov/news", title="USCIS news")
        watched.recommendations.add(rec("WRC-2024-1"))
        version = SourceVersion.objects.create(
            source=watched,
            content_hash="a" * 64,
            text="New text",
            url=watched.url,
            http_status=200,
            fetched_at=WEEK_45,
        )
        ChangeAlert.objects.create(source=watched, version=version, diff="+ New text")
        Source.objects.create(
            url="https://example.org/gone", title="Gone page", consecutive_failures=5
        )
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "in_progress")
    with at(WEEK_46):
        digests.send_due_digests()

    _text, staff_html = parts(smtp_server.to("staff@example.org")[0])
    _text, public_html = parts(smtp_server.to("public@example.org")[0])
    assert "Staff: work waiting" not in public_html
    groups = staff_html.split("<h3")
    [uscis_group] = [group for group in groups if uscis.name in group.split("</h3>")[0]]
    [no_lead_group] = [group for group in groups if "No lead agency" in group.split("</h3>")[0]]
    assert "Unreviewed change on USCIS news" in uscis_group
    assert "Review overdue: WRC-2024-2" in uscis_group
    assert "Review overdue: WRC-2024-1" not in staff_html  # re-verified by its change
    assert "Broken source: Gone page (5 failed checks in a row)" in no_lead_group
    client.force_login(editor)
    assert_links_resolve(
        client, staff_html, external={*digests.Evidence.objects.values_list("url", flat=True)}
    )


# -- Exactly once -------------------------------------------------------------------------


def test_duplicate_tasks_for_the_same_period_send_once(document, smtp_server, eager_tasks):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        subscriber = SubscriptionFactory(email="ana@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
    with at(WEEK_46):
        first = send_digest_task.apply(args=[subscriber.pk, "2026-W45"]).get()
        second = send_digest_task.apply(args=[subscriber.pk, "2026-W45"]).get()
        assert digests.send_due_digests() == {}

    assert (first, second) == ("sent", "done")
    assert len(smtp_server.messages) == 1
    assert DigestDelivery.objects.get().attempts == 1


def test_the_dispatcher_queues_one_task_per_due_subscriber(
    document, smtp_server, eager_tasks, django_capture_on_commit_callbacks
):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="a@example.org", documents=[document])
        SubscriptionFactory(email="b@example.org", documents=[document], frequency="monthly")
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
    with at(WEEK_46), django_capture_on_commit_callbacks(execute=True):
        # Both: week 45, and October for the monthly one (skipped: nothing happened then).
        assert send_due_digests_task.apply().get() == 2
    with at(WEEK_46), django_capture_on_commit_callbacks(execute=True):
        assert send_due_digests_task.apply().get() == 0
    assert [message["To"] for message in smtp_server.messages] == ["a@example.org"]


def test_the_dispatcher_is_scheduled_hourly_by_beat(db):
    task = PeriodicTask.objects.get(name="Send due digests")
    assert task.task == "tracker.tasks.send_due_digests_task"
    assert (task.interval.every, task.interval.period) == (1, "hours")


def test_a_digest_another_sender_holds_is_not_sent_twice(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        subscriber = SubscriptionFactory(email="ana@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
    period = digests.parse_period("2026-W45")
    held = DigestDelivery.objects.create(
        subscription=subscriber,
        period=period.key,
        period_start=period.start,
        period_end=period.end,
        state="sending",
        claim="another-worker",
        claimed_at=WEEK_46,
        attempts=1,
    )
    with at(WEEK_46 + datetime.timedelta(minutes=1)):
        assert digests.send_digest(subscriber, period) == "done"
    assert smtp_server.messages == []
    # The other sender vanished: once its lease is over, the digest is sent, once.
    with at(WEEK_46 + digests.CLAIM_LEASE + datetime.timedelta(minutes=1)):
        assert digests.send_digest(subscriber, period) == "sent"
        assert digests.send_digest(subscriber, period) == "done"
    assert len(smtp_server.messages) == 1
    held.refresh_from_db()
    assert (held.state, held.attempts) == ("sent", 2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="concurrent writers need PostgreSQL (SQLite serialises them)",
)
def test_two_workers_racing_for_the_same_digest_send_it_once(smtp_server, settings):
    uscis = AgencyFactory(acronym="USCIS")
    document = DocumentFactory()
    RecommendationFactory(document=document, code="R-1", lead=uscis)
    subscribers = [
        SubscriptionFactory(email=f"r{n}@example.org", documents=[document]) for n in range(20)
    ]
    record("R-1", "implemented")
    period = digests.digest_period("weekly", now=datetime.datetime.now(UTC), current=True)
    start = threading.Barrier(2)
    outcomes = []

    def worker():
        try:
            start.wait()
            for subscriber in subscribers:
                outcomes.append(digests.send_digest(subscriber, period))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(message["To"] for message in smtp_server.messages) == sorted(
        s.email for s in subscribers
    )
    assert outcomes.count("sent") == 20 and outcomes.count("done") == 20
    assert DigestDelivery.objects.filter(state="sent").count() == 20


# -- Failures -----------------------------------------------------------------------------


def test_a_refused_digest_is_recorded_failed_and_sent_on_retry(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="bounce@example.org", documents=[document])
        SubscriptionFactory(email="fine@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
    smtp_server.refuse.add("bounce@example.org")
    with at(WEEK_46):
        assert digests.send_due_digests() == {"sent": 1, "failed": 1}
    failed = DigestDelivery.objects.get(subscription__email="bounce@example.org")
    assert failed.state == "failed" and "550" in failed.error and failed.attempts == 1
    assert [message["To"] for message in smtp_server.messages] == ["fine@example.org"]

    smtp_server.refuse.clear()
    with at(WEEK_46 + datetime.timedelta(hours=1)):
        assert digests.send_due_digests() == {"sent": 1}
    failed.refresh_from_db()
    assert (failed.state, failed.error, failed.attempts) == ("sent", "", 2)


def test_a_digest_that_keeps_failing_stops_after_its_attempts(document, smtp_server):
    with at(WEEK_45 - datetime.timedelta(days=10)):
        SubscriptionFactory(email="bounce@example.org", documents=[document])
    with at(WEEK_45 + datetime.timedelta(days=1)):
        record("WRC-2024-1", "implemented")
    smtp_server.refuse.add("bounce@example.org")
    for hour in range(digests.MAX_ATTEMPTS + 2):
        with at(WEEK_46 + datetime.timedelta(hours=hour)):
            digests.send_due_digests()
    delivery = DigestDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", digests.MAX_ATTEMPTS)


# -- Scale --------------------------------------------------------------------------------


def test_queries_per_run_do_not_grow_with_subscribers(document, uscis, smtp_server):
    def run_for(count, moment):
        with at(moment - datetime.timedelta(days=10)):
            for n in range(count):
                SubscriptionFactory(
                    email=f"{count}-{n}@example.org", documents=[document], agencies=[uscis]
                )
        with at(moment - datetime.timedelta(days=5)):
            record("WRC-2024-1", "implemented" if count < 10 else "partial")
        with at(moment), CaptureQueriesContext(connection) as queries:
            assert digests.send_due_digests()["sent"] == count
        Subscription.objects.update(unsubscribed_at=moment)
        return len(queries)

    few = run_for(3, WEEK_46)
    many = run_for(30, WEEK_47)
    assert few == many
    assert many <= 25


def test_queries_for_one_digest_do_not_grow_with_what_happened(document, uscis, smtp_server):
    def send_with(changes, moment):
        with at(moment - datetime.timedelta(days=10)):
            subscriber = SubscriptionFactory(documents=[document], agencies=[uscis])
        with at(moment - datetime.timedelta(days=5)):
            for n in range(changes):
                record(f"WRC-2024-{n % 2 + 1}", "in_progress", title=f"Report {moment} {n}")
        period = digests.digest_period("weekly", now=moment)
        with at(moment), CaptureQueriesContext(connection) as queries:
            assert digests.send_digest(subscriber, period) == "sent"
        return len(queries)

    assert send_with(2, WEEK_46) == send_with(12, WEEK_47)


# -- The command and the admin ------------------------------------------------------------


def test_send_digests_command_dry_run_then_now(document, smtp_server):
    SubscriptionFactory(email="ana@example.org", documents=[document])
    record("WRC-2024-1", "implemented", effective_on=datetime.date.today())
    out = io.StringIO()
    call_command("send_digests", "--dry-run", "--now", stdout=out)
    assert "1 would send" in out.getvalue()
    assert smtp_server.messages == [] and not DigestDelivery.objects.exists()

    out = io.StringIO()
    call_command("send_digests", "--now", stdout=out)
    assert "[1/1] 1 sent" in out.getvalue()
    assert len(smtp_server.messages) == 1
    out = io.StringIO()
    call_command("send_digests", "--now", stdout=out)
    assert "No digests are due." in out.getvalue()


def test_the_admin_lists_subscribers_and_deliveries_and_previews_a_digest(
    document, admin_client, smtp_server
):
    subscriber = SubscriptionFactory(email="ana@example.org", documents=[document])
    record(
        "WRC-2024-1", "implemented", title="Processing opens", effective_on=datetime.date.today()
    )
    digests.send_due_digests(current=True)
    record(
        "WRC-2024-2", "partial", title="Reunification resumes", effective_on=datetime.date.today()
    )

    listing = admin_client.get("/admin/tracker/subscription/?q=ana")
    assert b"ana@example.org" in listing.content
    deliveries = admin_client.get("/admin/tracker/digestdelivery/?state__exact=sent")
    assert b"ana@example.org" in deliveries.content
    change = admin_client.get(f"/admin/tracker/subscription/{subscriber.pk}/change/")
    assert b"Preview next digest" in change.content

    preview = admin_client.get(f"/admin/tracker/subscription/{subscriber.pk}/preview/")
    assert preview.status_code == 200
    content = preview.content.decode()
    assert "List-Unsubscribe-Post" in content
    assert "Reunification resumes" in content  # next digest: what happened since the last
    assert "Processing opens" not in content
    assert len(smtp_server.messages) == 1  # previewing sends nothing


def test_the_admin_queues_failed_digests_again(
    document, admin_client, smtp_server, eager_tasks, django_capture_on_commit_callbacks
):
    subscriber = SubscriptionFactory(email="ana@example.org", documents=[document])
    record("WRC-2024-1", "implemented", effective_on=datetime.date.today())
    smtp_server.refuse.add("ana@example.org")
    digests.send_due_digests(current=True)
    delivery = DigestDelivery.objects.get(subscription=subscriber)
    assert delivery.state == "failed"

    smtp_server.refuse.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/tracker/digestdelivery/",
            {"action": "retry", "_selected_action": [delivery.pk]},
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == "sent"
    assert [message["To"] for message in smtp_server.messages] == ["ana@example.org"]


# -- A real worker ------------------------------------------------------------------------


@pytest.fixture
def digest_worker(start_worker, smtp_server):
    """A real worker that sends mail to the test SMTP server."""
    return start_worker(env={"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(settings.EMAIL_PORT)})


def test_a_real_worker_sends_a_digest_queued_twice_once(digest_worker, smtp_server):
    uscis = AgencyFactory(acronym="USCIS")
    document = DocumentFactory()
    RecommendationFactory(document=document, code="R-1", lead=uscis)
    subscriber = SubscriptionFactory(email="ana@example.org", documents=[document])
    record("R-1", "implemented")
    period = digests.digest_period("weekly", now=datetime.datetime.now(UTC), current=True)

    for _ in range(2):  # the same digest queued twice, taken by two threads at once
        send_digest_task.apply_async((subscriber.pk, period.key), queue=digest_worker.queue)
    wait_until(lambda: digest_worker.succeeded() == 2, message="both tasks")

    assert [message["To"] for message in smtp_server.messages] == ["ana@example.org"]
    delivery = DigestDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("sent", 1)
    assert "'sent'" in digest_worker.output() and "'done'" in digest_worker.output()


def test_a_real_worker_retries_a_refused_digest_then_records_it_failed(digest_worker, smtp_server):
    document = DocumentFactory()
    RecommendationFactory(document=document, code="R-1", lead=AgencyFactory())
    subscriber = SubscriptionFactory(email="bounce@example.org", documents=[document])
    record("R-1", "implemented")
    period = digests.digest_period("weekly", now=datetime.datetime.now(UTC), current=True)
    smtp_server.refuse.add("bounce@example.org")

    send_digest_task.apply_async((subscriber.pk, period.key), queue=digest_worker.queue)
    wait_until(lambda: digest_worker.succeeded() == 1, message="the retries")

    delivery = DigestDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", digests.MAX_ATTEMPTS)
    assert "550" in delivery.error
    assert digest_worker.output().count("retry: Retry in") == digests.MAX_ATTEMPTS - 1
    assert smtp_server.messages == []
