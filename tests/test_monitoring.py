"""Watching sources: real fetches from a local server, kept versions, alerts and feeds."""

import datetime
import os
import re
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.urls import reverse
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.factories import RecommendationFactory
from tests.support.pages import ConcurrencyProbe, Site, local_url, page
from tracker import monitoring, observing, tasks
from tracker.extracting import normalise_text
from tracker.models import (
    MIN_CHECK_INTERVAL,
    ChangeAlert,
    Evidence,
    FeedEntry,
    Source,
    SourceClaim,
    SourceVersion,
)
from tracker.monitoring import (
    MAX_REQUESTS_PER_HOST,
    Outcome,
    check_source,
    check_sources,
    claim_due_sources,
    watch_evidence_urls,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def watched_page(allow_local):
    """The page the watched `source` shows, on the local server; tests change its body."""
    served = Site(page())
    allow_local.expect_request("/chnv").respond_with_handler(served.handler)
    return served


@pytest.fixture
def source(allow_local, watched_page):
    watched = Source.objects.create(url=local_url(allow_local, "/chnv"), title="USCIS news")
    watched.recommendations.add(RecommendationFactory(code="WRC-2024-1.4"))
    return watched


def recheck(source):
    source.refresh_from_db()
    return check_source(source)


def test_the_first_check_keeps_a_baseline_version_without_an_alert(source):
    result = check_source(source)
    assert result.outcome == Outcome.FIRST_VERSION
    version = source.versions.get()
    assert "final dates for irregular crossings" in version.text
    assert "Privacy policy" not in version.text
    assert version.http_status == 200
    assert version.title == "CHNV parole update"
    source.refresh_from_db()
    assert source.content_hash == version.content_hash
    assert source.last_checked_at is not None
    assert not ChangeAlert.objects.exists()


def test_a_changed_page_keeps_a_version_and_raises_an_alert_with_a_diff(source, watched_page):
    check_source(source)
    watched_page.body = page("updated to 1 August 2024")
    result = recheck(source)
    assert result.outcome == Outcome.CHANGED
    assert source.versions.count() == 2
    alert = ChangeAlert.objects.get()
    assert alert.version.text != alert.previous_version.text
    lines = alert.diff.splitlines()
    assert any(line.startswith("+USCIS") and "updated to 1 August 2024" in line for line in lines)
    assert any(line.startswith("-USCIS") and "are unchanged" in line for line in lines)
    assert not alert.is_reviewed


def test_menus_and_timestamps_do_not_count_as_changes(source, watched_page):
    check_source(source)
    watched_page.body = page(
        menu=("Home", "News", "Careers"), stamp="Last updated: 2024-09-30 08:00"
    )
    assert recheck(source).outcome == Outcome.UNCHANGED
    assert source.versions.count() == 1
    assert not ChangeAlert.objects.exists()


def test_a_not_modified_answer_only_updates_the_state(source, watched_page):
    check_source(source)
    result = recheck(source)
    assert result.outcome == Outcome.NOT_MODIFIED
    assert watched_page.requests[-1].headers["If-None-Match"]
    assert source.versions.count() == 1
    source.refresh_from_db()
    assert source.next_check_at > timezone.now() + datetime.timedelta(hours=23)


def test_a_page_going_back_to_an_earlier_text_is_a_change(source, watched_page):
    check_source(source)
    watched_page.body = page("rescinded")
    recheck(source)
    watched_page.body = page()
    result = recheck(source)
    assert result.outcome == Outcome.CHANGED
    assert source.versions.count() == 2  # the earlier text is kept once
    reversal = ChangeAlert.objects.inbox_order().first()
    assert reversal.version.content_hash == source.versions.earliest("fetched_at").content_hash
    assert "rescinded" in reversal.diff


def test_checking_the_same_change_twice_records_it_once(source, watched_page):
    check_source(source)
    watched_page.body = page("updated")
    stale = Source.objects.get(pk=source.pk)  # a second delivery holding the old state
    assert recheck(source).outcome == Outcome.CHANGED
    assert check_source(stale).outcome in {Outcome.UNCHANGED, Outcome.NOT_MODIFIED}
    assert source.versions.count() == 2
    assert ChangeAlert.objects.count() == 1


def test_failures_are_recorded_back_off_and_flag_the_source_broken(allow_local):
    allow_local.expect_request("/gone").respond_with_data("Not here", status=404)
    source = Source.objects.create(url=local_url(allow_local, "/gone"))
    waits = []
    for _ in range(3):
        result = check_source(source)
        source.refresh_from_db()
        waits.append(source.next_check_at - source.last_checked_at)
    assert result.outcome == Outcome.FAILED
    assert not result.retryable
    assert "404" in source.last_error
    assert source.consecutive_failures == 3
    assert source.is_broken
    assert waits[0] < waits[1] < waits[2]


def test_a_redirect_to_another_local_port_is_refused_and_recorded(allow_local):
    allow_local.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": "http://127.0.0.1:9/admin"}
    )
    source = Source.objects.create(url=local_url(allow_local, "/moved"))
    result = check_source(source)
    assert result.outcome == Outcome.FAILED
    source.refresh_from_db()
    assert "127.0.0.1 is a loopback address" in source.last_error
    assert not source.versions.exists()


def test_a_source_on_a_private_address_is_refused_with_a_reason():
    source = Source.objects.create(url="http://10.0.0.7/internal")
    result = check_source(source)
    assert result.outcome == Outcome.FAILED
    source.refresh_from_db()
    assert "private" in source.last_error


FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>DHS press releases</title><link>https://www.dhs.gov/</link>
<description>News</description>
{items}
</channel></rss>"""
ITEM = """<item><title>{title}</title><link>https://www.dhs.gov/news/{slug}</link>
<guid>{slug}</guid><pubDate>Tue, 26 Jul 2016 12:00:00 GMT</pubDate>
<description>{summary}</description></item>"""


def feed(*items):
    return FEED.format(items="".join(ITEM.format(title=t, slug=s, summary=d) for t, s, d in items))


def test_new_feed_entries_become_candidate_evidence_with_suggestions(allow_local):
    minors = RecommendationFactory(
        code="WRC-2024-1.6",
        title="Expand family reunification and the Central American Minors program",
        text="Expand family reunification pathways and the Central American Minors program.",
    )
    RecommendationFactory(code="WRC-2024-4.2", text="Fund shelters for migrants in Mexico.")
    served = Site(feed(("Old release", "old", "Budget hearing testimony.")))
    allow_local.expect_request("/feed").respond_with_handler(
        lambda request: Response(served.body, content_type="application/rss+xml")
    )
    source = Source.objects.create(url=local_url(allow_local, "/feed"), kind=Source.Kind.FEED)
    check_source(source)
    assert FeedEntry.objects.count() == 1

    served.body = feed(
        ("Old release", "old", "Budget hearing testimony."),
        (
            "DHS expands Central American Minors program",
            "cam-expansion",
            "The Central American Minors program now covers more family members.",
        ),
    )
    result = recheck(source)
    assert result.new_entries == 1
    entry = FeedEntry.objects.get(guid="cam-expansion")
    assert entry.link == "https://www.dhs.gov/news/cam-expansion"
    assert entry.published_at == datetime.datetime(2016, 7, 26, 12, tzinfo=datetime.UTC)
    assert entry.suggestions[0]["id"] == minors.pk
    assert entry.summary == "The Central American Minors program now covers more family members."
    assert recheck(source).new_entries == 0
    assert FeedEntry.objects.count() == 2


def test_a_feed_that_is_not_a_feed_fails_clearly(allow_local):
    allow_local.expect_request("/notfeed").respond_with_data(
        "<html><body><p>Just a page <b>unclosed", content_type="application/xml"
    )
    source = Source.objects.create(url=local_url(allow_local, "/notfeed"), kind=Source.Kind.FEED)
    assert check_source(source).outcome == Outcome.FAILED
    source.refresh_from_db()
    assert "not a valid RSS or Atom feed" in source.last_error


def test_the_dispatcher_claims_each_due_source_once():
    now = timezone.now()
    due = Source.objects.create(url="https://a.example.org/", next_check_at=now)
    Source.objects.create(url="https://b.example.org/", next_check_at=now + datetime.timedelta(1))
    Source.objects.create(url="https://c.example.org/", next_check_at=now, is_active=False)
    assert claim_due_sources(now=now) == [due.pk]
    assert claim_due_sources(now=now) == []


@pytest.fixture
def threaded_server(monkeypatch):
    """A local server that answers requests in parallel, let through the fetch guard."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    monkeypatch.setenv("TRACKER_FETCH_ALLOW", f"127.0.0.1:{server.port}")
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_checking_many_sources_reports_each_and_stays_within_host_limits(threaded_server):
    probe = ConcurrencyProbe()
    for index in range(12):
        threaded_server.expect_request(f"/p{index}").respond_with_handler(probe.handler)
        Source.objects.create(url=local_url(threaded_server, f"/p{index}"))
    seen = []
    outcomes = check_sources(
        Source.objects.all(), concurrency=8, per_host=2, progress=lambda s, r: seen.append(s.pk)
    )
    assert outcomes == {Outcome.FIRST_VERSION: 12}
    assert sorted(seen) == sorted(Source.objects.values_list("pk", flat=True))
    assert SourceVersion.objects.count() == 12
    assert probe.peak == 2  # eight threads, but never more than two requests to one host


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="checks writing from several threads at once lock a SQLite test database",
)
@pytest.mark.parametrize("keep", [observing._HostTurns.KEEP, 0], ids=["kept", "taken-afresh"])
def test_in_one_process_on_the_memory_cache_task_checks_and_a_bulk_check_share_the_host_limit(
    threaded_server, settings, monkeypatch, keep
):
    # The demo's setup: no Redis, checks run as eager tasks in threads of the web process.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.setattr(observing._HostTurns, "KEEP", keep)  # how long a bulk turn keeps a slot
    probe = ConcurrencyProbe()
    probe.delay = 0.2
    threaded_server.expect_request(re.compile("^/")).respond_with_handler(probe.handler)
    singles = [Source.objects.create(url=local_url(threaded_server, f"/s{n}")) for n in range(8)]
    in_bulk = [Source.objects.create(url=local_url(threaded_server, f"/b{n}")) for n in range(12)]
    answers, errors = [], []

    def check_one_at_a_time(sources):
        try:
            for source in sources:
                answers.append(tasks.check_source_task.apply(args=(source.pk,)).get())
        except Exception as error:  # reported below, not lost with the thread
            errors.append(error)
        finally:
            connections.close_all()

    checkers = [
        threading.Thread(target=check_one_at_a_time, args=(singles[n::2],)) for n in range(2)
    ]
    for checker in checkers:
        checker.start()
    while not probe.current and any(checker.is_alive() for checker in checkers):
        time.sleep(0.01)  # until the single checks are fetching
    outcomes = check_sources(in_bulk, concurrency=8, processes=0)
    for checker in checkers:
        checker.join()

    assert not errors
    assert probe.peak <= MAX_REQUESTS_PER_HOST
    assert outcomes == {Outcome.FIRST_VERSION: len(in_bulk)}
    assert len(answers) == len(singles) and "first_version" in answers
    assert set(answers) <= {"first_version", "deferred"}
    origin = f"127.0.0.1:{threaded_server.port}"
    for _ in range(MAX_REQUESTS_PER_HOST):  # the bulk check gave every slot back
        monitoring.acquire_host_slot(origin)


@pytest.mark.django_db
def test_a_bulk_check_waits_while_its_host_is_busy_until_a_dead_holders_slot_frees_itself(
    allow_local, monkeypatch
):
    fetched_at = []

    def handler(request):
        fetched_at.append(time.monotonic())
        return Response(page(), content_type="text/html")

    allow_local.expect_request("/p").respond_with_handler(handler)
    source = Source.objects.create(url=local_url(allow_local, "/p"))
    monkeypatch.setattr(monitoring, "HOST_SLOT_LEASE", 1)
    leased_at = time.monotonic()
    for _ in range(MAX_REQUESTS_PER_HOST):  # taken by a worker that then died
        monitoring.acquire_host_slot(f"127.0.0.1:{allow_local.port}")

    assert check_sources([source], processes=0) == {Outcome.FIRST_VERSION: 1}
    assert fetched_at[0] >= leased_at + 1  # only once a lease ran out


@pytest.mark.django_db(transaction=True)
def test_check_sources_command_prints_progress(allow_local, capsys):
    allow_local.expect_request("/one").respond_with_data(page(), content_type="text/html")
    Source.objects.create(url=local_url(allow_local, "/one"))
    Source.objects.create(
        url=local_url(allow_local, "/two"), next_check_at=timezone.now() + datetime.timedelta(1)
    )
    call_command("check_sources", "--due")
    out = capsys.readouterr().out
    assert "Checking 1 source(s)" in out
    assert "[1/1]" in out and "first version" in out
    call_command("check_sources", "--all")
    out = capsys.readouterr().out
    assert "Checking 2 source(s)" in out
    assert "failed" in out


def test_normalising_keeps_words_and_drops_noise():
    text = (
        "  CHNV   dates\u00a0updated \n\n Updated: July 1, 2024 \n10:32 AM EDT\nPublished guidance"
    )
    assert normalise_text(text) == "CHNV dates updated\nPublished guidance"


def test_evidence_urls_can_become_watched_sources():
    recommendation = RecommendationFactory()
    evidence = Evidence.objects.create(title="CAM expanded", url="https://www.dhs.gov/news/cam")
    evidence.recommendations.add(recommendation)
    Evidence.objects.create(title="No link")
    assert watch_evidence_urls(Evidence.objects.all()) == 1
    assert watch_evidence_urls(Evidence.objects.all()) == 0
    source = Source.objects.get()
    assert list(source.recommendations.all()) == [recommendation]
    assert list(source.evidence.all()) == [evidence]


def test_check_now_from_the_admin_checks_the_source(
    client, admin_user, source, eager_tasks, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:tracker_source_changelist"),
            {"action": "check_now", "_selected_action": [source.pk]},
            follow=True,
        )
    assert "Checking 1 source(s)" in response.content.decode()
    assert source.versions.count() == 1


def test_every_monitoring_admin_page_renders(client, admin_user, source, watched_page):
    check_source(source)
    watched_page.body = page("changed")
    recheck(source)
    FeedEntry.objects.create(source=source, guid="g", title="Entry")
    client.force_login(admin_user)
    for model in (Source, SourceVersion, ChangeAlert, FeedEntry):
        name = model._meta.model_name
        assert client.get(reverse(f"admin:tracker_{name}_changelist")).status_code == 200
        detail = reverse(f"admin:tracker_{name}_change", args=[model.objects.first().pk])
        assert client.get(detail).status_code == 200
    assert client.get(reverse("admin:tracker_source_add")).status_code == 200


def test_broken_sources_are_flagged_and_filtered_in_the_admin(client, admin_user):
    Source.objects.create(url="https://ok.example.org/")
    broken = Source.objects.create(url="https://broken.example.org/")
    Source.objects.filter(pk=broken.pk).update(consecutive_failures=3, last_error="HTTP 500")
    client.force_login(admin_user)
    url = reverse("admin:tracker_source_changelist")
    content = client.get(url, {"health": "broken"}).content.decode()
    assert "broken.example.org" in content and "ok.example.org" not in content
    assert 'alt="False"' in content  # the Healthy column's red icon


def test_check_sources_refuses_bad_options():
    with pytest.raises(CommandError, match="concurrency"):
        call_command("check_sources", "--concurrency", "0")
    with pytest.raises(CommandError, match="--watch"):
        call_command("check_sources", "--watch", "0")
    with pytest.raises(CommandError, match="--processes"):
        call_command("check_sources", "--processes", "-1")


def test_feed_links_that_are_not_web_links_are_dropped(allow_local):
    hostile = FEED.format(
        items=ITEM.format(title="Click", slug="x", summary="s").replace(
            "https://www.dhs.gov/news/x", "javascript:alert(document.domain)"
        )
        + ITEM.format(title="Relative", slug="y", summary="s").replace(
            "https://www.dhs.gov/news/y", "/news/y"
        )
    )
    allow_local.expect_request("/feed").respond_with_data(
        hostile, content_type="application/rss+xml"
    )
    source = Source.objects.create(url=local_url(allow_local, "/feed"), kind=Source.Kind.FEED)
    check_source(source)
    links = dict(FeedEntry.objects.values_list("title", "link"))
    assert links["Click"] == ""
    assert links["Relative"] == local_url(allow_local, "/news/y")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="row locks with SKIP LOCKED need PostgreSQL",
)
def test_two_dispatchers_at_once_never_claim_the_same_source():
    now = timezone.now()
    Source.objects.bulk_create(
        Source(url=f"https://site{i}.example.org/", next_check_at=now) for i in range(40)
    )
    claims = []
    barrier = threading.Barrier(2)

    def dispatcher():
        try:
            barrier.wait()
            claims.append(claim_due_sources(now=now, limit=25))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = claims
    assert not set(first) & set(second)
    assert len(first) + len(second) == 40


@pytest.mark.django_db(transaction=True)
def test_a_bulk_check_records_every_not_modified_answer(allow_local):
    sites = [Site(page(f"page {index}")) for index in range(5)]
    for index, served in enumerate(sites):
        allow_local.expect_request(f"/s{index}").respond_with_handler(served.handler)
        Source.objects.create(
            url=local_url(allow_local, f"/s{index}"), check_interval=datetime.timedelta(hours=6)
        )
    check_sources(Source.objects.all(), concurrency=2)
    due = timezone.now()
    Source.objects.update(next_check_at=due, consecutive_failures=2)
    assert check_sources(Source.objects.all(), concurrency=2) == {Outcome.NOT_MODIFIED: 5}
    for source in Source.objects.all():
        assert source.last_checked_at >= due
        assert source.consecutive_failures == 0
        assert source.next_check_at == due + datetime.timedelta(hours=6)  # timed from due


# --- the check interval's bounds ------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "seconds", "message"),
    [
        ("0", 0, "at most once a minute"),
        ("-60", -60, "at most once a minute"),
        ("91 00:00:00", 91 * 86400, "at least every 90 days"),
    ],
)
def test_an_interval_out_of_bounds_is_refused_in_the_admin_and_the_api(
    client, admin_user, interval, seconds, message
):
    from rest_framework.test import APIClient

    from tests.support.staff import source_form_data

    source = Source.objects.create(url="https://www.uscis.gov/chnv")
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:tracker_source_change", args=[source.pk]),
        source_form_data(source, check_interval=interval),
    )
    assert response.status_code == 200  # the form again, with the reason
    assert message in str(response.context["adminform"].form.errors["check_interval"])

    api = APIClient()
    api.force_authenticate(admin_user)
    answer = api.patch(
        reverse("api:source-detail", args=[source.pk]),
        {"check_interval": str(seconds)},
        format="json",
    )
    assert answer.status_code == 400
    assert message in answer.json()["check_interval"][0]
    source.refresh_from_db()
    assert source.check_interval == datetime.timedelta(hours=24)  # nothing saved


def test_the_database_refuses_an_interval_out_of_bounds_written_by_code():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Source.objects.create(url="https://example.org/", check_interval=datetime.timedelta(0))
    edge = Source.objects.create(url="https://example.org/a", check_interval=MIN_CHECK_INTERVAL)
    assert edge.check_interval == datetime.timedelta(minutes=1)


# --- the schedule: timed from when a check was due ----------------------------------------


MINUTE = datetime.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("due_seconds_ago", "next_in_seconds"),
    [
        (40, 20),  # a dispatcher's lateness does not push the schedule: every minute it is
        (0, 60),
        (-300, 60),  # checked early, as staff asked: a full interval from now
        (150, 60),  # over an interval late (a backlog): missed checks are not all made up
    ],
)
def test_the_next_check_is_timed_from_when_the_check_was_due(
    allow_local, due_seconds_ago, next_in_seconds
):
    site = Site(page("first"))
    allow_local.expect_request("/p").respond_with_handler(site.handler)
    source = Source.objects.create(url=local_url(allow_local, "/p"), check_interval=MINUTE)
    check_source(source)
    site.body = page("second")
    outcomes = []
    for _ in range(2):  # a changed page (written row by row), then a 304 (in one UPDATE)
        now = timezone.now()
        due = now - datetime.timedelta(seconds=due_seconds_ago)
        Source.objects.filter(pk=source.pk).update(next_check_at=due)
        source.refresh_from_db()
        outcomes.append(check_source(source, now=now).outcome)
        source.refresh_from_db()
        assert source.next_check_at == now + datetime.timedelta(seconds=next_in_seconds)
    assert outcomes == [Outcome.CHANGED, Outcome.NOT_MODIFIED]


def test_a_round_of_unchanged_checks_writes_each_source_row_once(allow_local):
    from django.db import connection

    for index in range(3):
        allow_local.expect_request(f"/u{index}").respond_with_handler(Site(page("same")).handler)
        Source.objects.create(url=local_url(allow_local, f"/u{index}"), check_interval=MINUTE)
    check_sources(Source.objects.all(), processes=0)  # the baselines
    Source.objects.update(next_check_at=timezone.now() - MINUTE)
    with connection.cursor() as cursor:
        for statement in ROW_WRITES_SETUP[connection.vendor]:
            cursor.execute(statement)
    call_command("check_sources", processes=0, verbosity=0)  # claim, check, record
    with connection.cursor() as cursor:
        cursor.execute("SELECT source_id, COUNT(*) FROM row_writes GROUP BY source_id")
        writes = dict(cursor.fetchall())
    assert writes == {source.pk: 1 for source in Source.objects.all()}
    assert not SourceClaim.objects.exists()  # each claim ended with its check


# A trigger counting the writes of each source row, on the test's own connection.
ROW_WRITES_SETUP = {
    "sqlite": [
        "CREATE TEMP TABLE row_writes (source_id integer)",
        """CREATE TEMP TRIGGER count_row_writes AFTER UPDATE ON tracker_source
           BEGIN INSERT INTO row_writes VALUES (NEW.id); END""",
    ],
    "postgresql": [
        "CREATE TEMP TABLE row_writes (source_id integer)",
        """CREATE FUNCTION pg_temp.count_row_write() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO row_writes VALUES (NEW.id); RETURN NEW; END $$""",
        """CREATE TRIGGER count_row_writes AFTER UPDATE ON tracker_source
           FOR EACH ROW EXECUTE FUNCTION pg_temp.count_row_write()""",
    ],
}


def test_a_check_that_keeps_killing_its_process_is_recorded_as_failed_not_run_again():
    source = Source.objects.create(url="https://example.org/huge", check_interval=MINUTE)
    now = timezone.now()
    assert claim_due_sources(now=now) == [source.pk]
    for _ in range(monitoring.MAX_STARTS):
        assert monitoring.start_claimed_check(source.pk, now=now)  # each start then died
    assert not monitoring.start_claimed_check(source.pk, now=now)
    source.refresh_from_db()
    assert source.consecutive_failures == 1
    assert "stopped its worker process 3 times" in source.last_error
    assert source.next_check_at > now  # backed off, like any failure
    assert not SourceClaim.objects.exists()


def test_a_check_retried_later_keeps_its_claim_and_starts_afresh():
    source = Source.objects.create(url="https://example.org/flaky")
    now = timezone.now()
    claim_due_sources(now=now)
    for _ in range(monitoring.MAX_STARTS + 2):  # retries are not crashes
        assert monitoring.start_claimed_check(source.pk, now=now)
        monitoring.hold_claim(source.pk, now=now)
    claim = SourceClaim.objects.get()
    assert claim.expires_at == now + monitoring.QUEUED_LEASE
    assert claim_due_sources(now=now + monitoring.RUNNING_LEASE) == []  # still held


def test_a_lost_check_is_claimed_again_when_its_claim_runs_out():
    source = Source.objects.create(url="https://example.org/lost")
    now = timezone.now()
    assert claim_due_sources(now=now) == [source.pk]
    monitoring.start_claimed_check(source.pk, now=now)  # and its process died
    assert claim_due_sources(now=now + monitoring.RUNNING_LEASE - MINUTE) == []
    assert claim_due_sources(now=now + monitoring.RUNNING_LEASE) == [source.pk]


# --- start-up ---------------------------------------------------------------------------------


def test_check_sources_starts_without_what_it_does_not_need(tmp_path):
    """Run every minute where there is no Celery: no system checks (they load every URL and
    view), no admin, no parsers until a page needs one (bench/check_sources.py prints what
    the start-up costs)."""
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/startup.sqlite3"}
    manage = [sys.executable, "-X", "importtime", "manage.py"]
    subprocess.run([*manage[:1], "manage.py", "migrate", "-v", "0"], env=env, check=True)
    done = subprocess.run(
        [*manage, "check_sources"], env=env, capture_output=True, text=True, check=True
    )
    assert "No sources to check." in done.stdout
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "tracker.monitoring" in loaded  # the probe sees what the command imports
    unneeded = {"tracker.admin", "tracker.importing", "trafilatura", "feedparser"}
    assert not unneeded & loaded
    assert "drf_spectacular.views" not in loaded  # the URLs: no system checks
