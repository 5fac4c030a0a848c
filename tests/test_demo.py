"""The demo: both seed documents, the news reports as evidence, and the history they show;
and `make demo`'s first run: what it installs, where its links point, the pages it watches,
its 404 page and icon."""

import datetime
import io
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.outages import free_port
from tracker import digests
from tracker.demo import DEMO_DIR, load_demo
from tracker.demo import sources as demo_sources
from tracker.importing import parse_csv, parse_markdown, parse_op_ed
from tracker.models import (
    ChangeAlert,
    Document,
    Evidence,
    FeedEntry,
    Recommendation,
    Source,
    SourceVersion,
    StatusChange,
    Subscription,
)
from tracker.progress import progress_by_document, status_as_of

Status = Recommendation.Status
pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
# What `make test` needs and `make demo` must not install (hundreds of MB, a browser driver).
TEST_TOOLS = {"playwright", "schemathesis", "hypothesis", "pytest", "axe-playwright-python"}
WRC_SEED = "wrc-2024-migration-does-not-start-at-the-us-border.md"
HILL_SEED = "thehill-2021-five-immediate-migration-steps.txt"


@pytest.fixture
def demo():
    return load_demo()


def owners(code):
    recommendation = Recommendation.objects.get(code=code)
    lead = recommendation.ownerships.get(role="lead").agency.acronym
    supporting = recommendation.ownerships.filter(role="supporting")
    supporting = sorted(o.agency.acronym or o.agency.name for o in supporting)
    return lead, supporting


def test_the_demo_holds_both_documents_and_every_recommendation(demo):
    assert (demo.documents, demo.recommendations, demo.evidence) == (2, 25, 3)
    wrc = Document.objects.get(code="WRC-2024")
    assert wrc.publisher.name == "Women's Refugee Commission"
    assert wrc.kind == Document.Kind.BRIEF
    assert wrc.recommendations.filter(parent=None).count() == 5
    assert wrc.recommendations.exclude(parent=None).count() == 15
    hill = Document.objects.get(code="HILL-2021")
    assert (hill.kind, hill.author) == (Document.Kind.OP_ED, "Dan Restrepo")
    assert hill.recommendations.count() == 5
    assert not Recommendation.objects.filter(is_published=False).exists()
    assert all(r.ownerships.filter(role="lead").count() == 1 for r in Recommendation.objects.all())


def test_owners_are_curated_where_the_op_ed_names_no_agency(demo):
    assert owners("HILL-2021-1") == ("USAID", ["DOS"])
    assert owners("HILL-2021-2") == ("USAID", [])
    assert owners("HILL-2021-5") == ("Treasury", ["DOJ", "DOS"])
    assert owners("WRC-2024-1.3") == ("USCIS", ["DOS"])
    assert owners("WRC-2024-4.1") == ("Congress", ["PRM"])


def test_the_news_reports_are_evidence_with_a_dated_history(demo):
    assert demo.status_changes == 4
    step_four = Recommendation.objects.get(code="HILL-2021-4")
    history = [(c.effective_on, c.status) for c in step_four.status_changes.all()]
    assert history == [
        (datetime.date(2019, 3, 12), Status.STALLED),
        (datetime.date(2016, 7, 26), Status.PARTIAL),
        (datetime.date(2016, 1, 13), Status.IN_PROGRESS),
    ]
    assert step_four.status == Status.STALLED
    minors = Recommendation.objects.get(code="WRC-2024-1.6")
    assert minors.status == Status.IN_PROGRESS
    expansion = Evidence.objects.get(published_on=datetime.date(2016, 7, 26))
    assert set(expansion.recommendations.values_list("code", flat=True)) == {
        "HILL-2021-4",
        "WRC-2024-1.6",
        "WRC-2024-2.2",
    }
    assert "Central American Minors" in expansion.title
    setback = Evidence.objects.get(effect=Evidence.Effect.SETBACK)
    assert "Remain in Mexico" in setback.title
    assert all(change.evidence.exists() for change in StatusChange.objects.all())


def test_the_demo_history_answers_as_of_any_date(demo):
    step_four = Recommendation.objects.get(code="HILL-2021-4")
    assert status_as_of(datetime.date(2015, 12, 31))[step_four.pk] == Status.NOT_ASSESSED
    assert status_as_of(datetime.date(2016, 6, 1))[step_four.pk] == Status.IN_PROGRESS
    assert status_as_of(datetime.date(2018, 1, 1))[step_four.pk] == Status.PARTIAL
    wrc = Document.objects.get(code="WRC-2024")
    # One bullet of six in section 1 is in progress: 1/6 of a quarter, over five sections.
    assert progress_by_document([wrc.pk])[wrc.pk].progress == pytest.approx(0.25 / 6 / 5)


def test_loading_the_demo_again_changes_nothing(demo):
    before = (
        Recommendation.objects.count(),
        Evidence.objects.count(),
        StatusChange.objects.count(),
    )
    again = load_demo()
    assert again.status_changes == 0
    after = (
        Recommendation.objects.count(),
        Evidence.objects.count(),
        StatusChange.objects.count(),
    )
    assert after == before


def test_the_demo_tells_assessed_from_not_and_history_from_background(demo, client):
    """The op-ed of March 2021: its stalled step was stalled before it; four steps were never
    assessed, which the page says rather than "not started"."""
    op_ed = client.get(reverse("public:document", args=["HILL-2021"])).content.decode()
    step_four = client.get(
        reverse("public:recommendation", kwargs={"document": "HILL-2021", "code": "HILL-2021-4"})
    ).content.decode()

    assert "1 of 5 assessed · 0 implemented" in op_ed
    assert "status-not_started" not in op_ed and 'status-not_assessed">Not yet assessed' in op_ed
    assert "since March 24, 2021 (the document's date)" in step_four
    assert "Background: stalled since March 12, 2019, before the document." in step_four
    assert "Before this document" in step_four


def test_the_demo_user_is_refused_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("load_demo", "--demo-user", verbosity=0)
    assert not Document.objects.exists()


def test_the_demo_command_prints_how_to_log_in(settings, capsys):
    settings.DEBUG = True
    call_command("load_demo", "--demo-user")
    out = capsys.readouterr().out
    assert "Demo loaded: 2 documents, 25 recommendations" in out
    assert "DEMO ONLY" in out and "'demo'" in out
    assert "'editor' (password 'editor'): an editor" in out


def log_in(client, username, password):
    response = client.post(
        reverse("admin:login"), {"username": username, "password": password, "next": "/admin/"}
    )
    assert response.status_code == 302, f"{username} could not log in"


def test_the_demo_has_an_administrator_and_an_editor_login(settings, client):
    settings.DEBUG = True
    call_command("load_demo", "--demo-user", verbosity=0)
    log_in(client, "demo", "demo")
    index = client.get(reverse("admin:index")).content.decode()
    assert "Periodic tasks" in index and "Users" in index
    client.logout()
    log_in(client, "editor", "editor")
    editor = get_user_model().objects.get(username="editor")
    assert not editor.is_superuser and [g.name for g in editor.groups.all()] == ["Editor"]
    index = client.get(reverse("admin:index")).content.decode()
    assert "Recommendations" in index
    assert "Periodic tasks" not in index and "Tokens" not in index and "Users" not in index
    # Editors record status changes.
    recommendation = Recommendation.objects.get(code="WRC-2024-1.4")
    record = reverse("admin:tracker_recommendation_record_status", args=[recommendation.pk])
    assert client.get(record).status_code == 200


def test_the_admin_shows_the_demo(client, demo, admin_user):
    client.force_login(admin_user)
    documents = client.get(reverse("admin:tracker_document_changelist")).content.decode()
    assert "Migration Does Not Start at the US Border" in documents
    assert "18 not yet assessed · 2 in progress" in documents  # WRC-2024-1 by its 1.6
    assert "4 not yet assessed · 1 stalled" in documents
    hill = Document.objects.get(code="HILL-2021")
    listing = client.get(
        reverse("admin:tracker_recommendation_changelist"), {"document__id__exact": hill.pk}
    ).content.decode()
    assert "HILL-2021-4" in listing and "Stalled" in listing and "WRC-2024" not in listing


@pytest.mark.seeds
def test_the_shipped_demo_texts_are_the_seed_texts_as_published(seeds_dir):
    """The demo CSVs carry the recommendations as the seeds publish them."""
    for seed, parse, code, csv_name in [
        (WRC_SEED, parse_markdown, "WRC-2024", "wrc-2024.csv"),
        (HILL_SEED, parse_op_ed, "HILL-2021", "hill-2021.csv"),
    ]:
        from_seed = parse((seeds_dir / seed).read_text(encoding="utf-8"), document_code=code)
        shipped = parse_csv((DEMO_DIR / csv_name).read_text(encoding="utf-8"))
        assert [(r.code, r.parent_code, r.text, r.note) for r in shipped.recommendations] == [
            (r.code, r.parent_code, r.text, r.note) for r in from_seed.recommendations
        ]


# -- make demo: what it installs --------------------------------------------------------------


def make_dry_run(target, tmp_path, **variables):
    """Return the commands `make TARGET` would run on a fresh clone (its .venv in tmp_path)."""
    assignments = [f"{name}={value}" for name, value in variables.items()]
    # Not the settings of a `make test` this may run under (its command-line variables).
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "HOST", "PORT"}
    }
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={tmp_path / '.venv'}", *assignments],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def pip_installs(commands):
    """Return what each `pip install` line of `commands` installs (its last argument)."""
    return [shlex.split(line)[-1] for line in commands.splitlines() if "-m pip install" in line]


def runtime_distributions():
    """Return the distributions `pip install -e .` brings in: the project's dependencies
    (no extras of its own) and theirs, as installed here, with the extras they ask for."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    seen, pending = set(), [(Requirement(spec), "") for spec in project["dependencies"]]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        wanted = {(name, wanted_extra) for wanted_extra in {"", *requirement.extras}}
        if wanted <= seen:
            continue
        seen |= wanted
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not for this platform
        for _name, wanted_extra in wanted:
            pending.extend((Requirement(spec), wanted_extra) for spec in requires)
    return {name for name, _extra in seen}


def test_make_demo_installs_what_running_needs_and_no_test_tools(tmp_path):
    demo = make_dry_run("demo", tmp_path)
    assert pip_installs(demo) == ["pip", "."]
    assert "manage.py runserver" in demo
    test = make_dry_run("test", tmp_path)
    assert pip_installs(test) == ["pip", ".", ".[test]"]

    runtime = runtime_distributions()
    assert {"django", "celery", "trafilatura", "whitenoise"} <= runtime
    assert not runtime & TEST_TOOLS


def test_a_test_tool_among_the_runtime_dependencies_would_be_caught(monkeypatch):
    """The check above follows dependencies of dependencies: schemathesis pulls hypothesis."""
    real = metadata.distribution

    def with_schemathesis(name):
        if canonicalize_name(name) == "drf-spectacular":
            return real("schemathesis")
        return real(name)

    monkeypatch.setattr(metadata, "distribution", with_schemathesis)
    assert {"hypothesis"} <= runtime_distributions()


# -- make demo: its address ---------------------------------------------------------------------


def demo_environment(commands):
    """The environment `make demo` serves the site with (its `export` line)."""
    [export] = [line for line in commands.splitlines() if line.startswith("export ")]
    words = shlex.split(export.removesuffix("\\").removeprefix("export "))
    return dict(word.split("=", 1) for word in words)


def links_in(message):
    texts = [message.body, *(content for content, _type in message.alternatives)]
    links = {url for text in texts for url in re.findall(r"https?://[^\s\"'<>]+", text)}
    header = message.extra_headers.get("List-Unsubscribe", "")
    return links | set(re.findall(r"<(https?://[^>]+)>", header))


def test_port_moves_every_mailed_link(tmp_path, settings, client, mailoutbox):
    environment = demo_environment(make_dry_run("demo", tmp_path, PORT=8101))
    assert environment["TRACKER_BASE_URL"] == "http://127.0.0.1:8101"
    settings.TRACKER_BASE_URL = environment["TRACKER_BASE_URL"]
    load_demo()
    hill = Document.objects.get(code="HILL-2021")
    start = datetime.datetime(2026, 11, 2, 9, tzinfo=datetime.UTC)

    with time_machine.travel(start, tick=False):
        client.post(
            "/subscribe/",
            {"email": "ana@example.org", "frequency": "weekly", "documents": [hill.pk]},
        )
        [confirmation] = mailoutbox
        [confirm_url] = [url for url in links_in(confirmation) if "/subscribe/confirm/" in url]
        assert client.get(urlsplit(confirm_url).path).status_code == 200
        assert Subscription.objects.get().is_active
    with time_machine.travel(start + datetime.timedelta(days=1), tick=False):
        Recommendation.objects.get(code="HILL-2021-1").record_status(
            "in_progress", effective_on=datetime.date(2026, 11, 3), rationale="Aid announced."
        )
    with time_machine.travel(start + datetime.timedelta(weeks=1), tick=False):
        assert digests.send_due_digests() == {"sent": 1}

    [_, digest] = mailoutbox
    links = links_in(confirmation) | links_in(digest)
    own = {url for url in links if urlsplit(url).hostname == "127.0.0.1"}
    assert {urlsplit(url).port for url in own} == {8101}
    paths = {urlsplit(url).path.split("/")[1] for url in own}
    assert {"subscribe", "subscription", "documents"} <= paths  # confirm, preferences, pages
    assert any(url.endswith("/unsubscribe/") for url in own)


# -- make demo: the pages it watches ------------------------------------------------------------


@pytest.fixture
def demo_site(live_server, settings, monkeypatch):
    """The demo's own pages served on 127.0.0.1 in demo mode, let through the fetch guard as
    `make demo` does; returns a function that moves the newsroom's clock on."""
    settings.TRACKER_DEMO = True
    address = urlsplit(live_server.url)
    assert address.hostname == "127.0.0.1"
    monkeypatch.setenv("TRACKER_FETCH_ALLOW", f"127.0.0.1:{address.port}")
    now = [0.0]
    monkeypatch.setattr(demo_sources, "clock", lambda: now[0])
    demo_sources.restart_clock()

    def wait(seconds):
        now[0] += seconds

    yield wait
    demo_sources.restart_clock()


def check_all():
    out = io.StringIO()
    call_command("check_sources", "--all", stdout=out)
    return out.getvalue()


def test_the_demo_shows_versions_a_change_alert_and_feed_entries_after_two_checks(
    demo_site, live_server, client
):
    summary = load_demo(sources_at=live_server.url)
    assert summary.sources == 5
    newsroom = Source.objects.get(url=f"{live_server.url}/demo-sources/newsroom/")
    feed = Source.objects.get(kind=Source.Kind.FEED)
    # Checked each minute, the shortest interval allowed; a release comes sooner than that.
    assert newsroom.check_interval == datetime.timedelta(minutes=1)
    assert demo_sources.STEP_SECONDS < 60

    first = check_all()
    assert "5 first version" in first
    assert SourceVersion.objects.count() == 5 and not ChangeAlert.objects.exists()
    assert [entry.title for entry in FeedEntry.objects.all()] == [demo_sources.RELEASES[0][0]]

    demo_site(newsroom.check_interval.total_seconds())
    second = check_all()
    assert "2 changed" in second
    assert "newsroom/: changed (see Change alerts)" in second
    assert "feed.xml: changed, 3 new feed entries (see Feed entries)" in second
    [alert] = ChangeAlert.objects.all()
    assert alert.source == newsroom
    added = [line for line in alert.diff.splitlines() if line.startswith("+")]
    assert any("will fund shelters in Mexico" in line for line in added)
    entries = FeedEntry.objects.filter(source=feed).order_by("published_at")
    assert [entry.title for entry in entries] == [title for title, *_ in demo_sources.RELEASES]
    assert all(entry.suggestions for entry in entries)  # they bear on demo recommendations

    # Within a step the pages read the same: no alert out of nothing.
    check_all()
    assert ChangeAlert.objects.count() == 1 and FeedEntry.objects.count() == 4

    # The evidence links to its stand-in page, and the public pages to its kept copy.
    evidence = Evidence.objects.get(published_on=datetime.date(2016, 7, 26))
    assert evidence.url.startswith(f"{live_server.url}/demo-sources/evidence/")
    with urllib.request.urlopen(evidence.url, timeout=10) as response:
        assert "Central American Minors" in response.read().decode()
    page = client.get(
        reverse("public:recommendation", kwargs={"document": "HILL-2021", "code": "HILL-2021-4"})
    ).content.decode()
    assert f'href="{evidence.url}"' in page
    assert page.count("Kept copy of the source") == 3


def test_the_newsroom_stops_changing_once_every_release_is_out(demo_site):
    steps = []
    for _ in range(len(demo_sources.RELEASES) + 2):
        steps.append(len(demo_sources.releases_out(demo_sources.current_step())))
        demo_site(demo_sources.STEP_SECONDS)
    assert steps == [1, 2, 3, 4, 4, 4]


def test_loading_the_demo_on_another_port_moves_its_sources(demo_site, live_server):
    load_demo(sources_at="http://127.0.0.1:8000")
    check_all()  # nothing listens there for this test: each fails
    kept = set(Source.objects.values_list("pk", flat=True))
    load_demo(sources_at=live_server.url)
    assert set(Source.objects.values_list("pk", flat=True)) == kept
    assert all(
        url.startswith(live_server.url) for url in Source.objects.values_list("url", flat=True)
    )
    evidence_urls = Evidence.objects.values_list("url", flat=True)
    assert all(url.startswith(live_server.url) for url in evidence_urls)


def test_the_demo_pages_are_not_served_outside_demo_mode(client, settings):
    settings.TRACKER_DEMO = False
    assert client.get("/demo-sources/newsroom/").status_code == 404
    assert client.get("/demo-sources/newsroom/feed.xml").status_code == 404


def test_the_demo_watches_nothing_unless_in_demo_mode(settings):
    settings.DEBUG = True
    call_command("load_demo", "--demo-user", verbosity=0)
    assert not Source.objects.exists()
    assert not Evidence.objects.exclude(url="").exists()


# -- make demo: the site as visitors get it ----------------------------------------------------


def demo_mode_settings(**extra):
    """Settings as `make demo` gives them, read in a fresh interpreter."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    code = (
        "from config import settings as s; "
        "print(s.DEBUG, s.SECRET_KEY, s.WHITENOISE_USE_FINDERS, "
        "s.STORAGES['staticfiles']['BACKEND'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environment, "TRACKER_DEMO": "1", **extra},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.split()


def test_demo_mode_runs_without_debug_on_a_throwaway_key():
    debug, key, finders, storage = demo_mode_settings()
    assert debug == "False" and finders == "True"
    assert storage == "django.contrib.staticfiles.storage.StaticFilesStorage"
    assert len(key) >= 50 and "insecure" not in key
    assert demo_mode_settings()[1] != key  # made afresh each time, unless given
    assert demo_mode_settings(SECRET_KEY="given")[1] == "given"


@pytest.fixture
def demo_server(tmp_path):
    """`manage.py runserver` as `make demo` starts it (demo mode, DEBUG off) on 127.0.0.1."""
    port = free_port()
    environment = {
        name: value for name, value in os.environ.items() if name not in {"SECRET_KEY", "DEBUG"}
    }
    environment.update(
        TRACKER_DEMO="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        TRACKER_BASE_URL=f"http://127.0.0.1:{port}",
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runserver",
            "--noreload",
            "--skip-checks",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/favicon.ico", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_demo_shows_the_site_s_own_404_page_and_an_icon(demo_server):
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{demo_server}/no-such-page/", timeout=10)
    page = missing.value.read().decode()
    assert missing.value.code == 404
    assert "There is no public page at this address" in page
    assert "URLconf" not in page and "DEBUG = True" not in page

    # Pages that link no icon (the admin's) get the one browsers ask for.
    with urllib.request.urlopen(f"{demo_server}/favicon.ico", timeout=10) as icon:
        assert icon.read().startswith(b"\x00\x00\x01\x00")  # an ICO file
        assert icon.url.endswith("/static/tracker/favicon.ico")
    [href] = re.findall(r'<link rel="icon" href="([^"]+)"', page)
    with urllib.request.urlopen(f"{demo_server}{href}", timeout=10) as linked:
        assert linked.headers["Content-Type"] == "image/svg+xml"
        assert linked.read().startswith(b"<svg")
