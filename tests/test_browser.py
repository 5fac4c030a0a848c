"""The public pages, feeds and badges in a real headless Chromium (Debian's), over the demo data.

Playwright drives /usr/bin/chromium; it never downloads a browser of its own. Without Chromium
these tests are skipped, unless CI=1 or TRACKER_REQUIRE_BROWSER=1 asks for them, when they fail.
Screenshots land in test-artifacts/screenshots/.
"""

import datetime
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule

from tests.factories import EvidenceFactory, SubscriptionFactory, UserFactory
from tracker import digests
from tracker.demo import load_demo
from tracker.models import (
    Agency,
    DigestDelivery,
    Document,
    Evidence,
    Recommendation,
    Source,
    SourceVersion,
    Subscription,
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start.
    "--disable-gpu",
    # Without these Chromium reaches out to the internet on its own.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"

# The demo evidence names no web address; these tests give one report one to follow.
CAM_REPORT = "DHS expands the Central American Minors program to more relatives"
CAM_REPORT_URL = "https://news.example.org/central-american-minors"


def browser_required():
    return any(
        os.environ.get(name, "").lower() in {"1", "true", "yes"}
        for name in ("CI", "TRACKER_REQUIRE_BROWSER")
    )


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if browser_required():
            pytest.fail(f"{reason}, and CI or TRACKER_REQUIRE_BROWSER asks for browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    # in it (the demo data) are plain synchronous ones.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def site(live_server, transactional_db):
    """The live server on 127.0.0.1 with the demo data loaded."""
    assert urlsplit(live_server.url).hostname == "127.0.0.1"
    load_demo()
    Evidence.objects.filter(title=CAM_REPORT).update(url=CAM_REPORT_URL)
    return live_server.url


@pytest.fixture
def page(browser, site, request):
    """A fresh page that may load nothing but the live server, and fails its test on any
    JavaScript error, failed request or Content-Security-Policy violation."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    origin = f"{site}/"
    blocked = []

    def only_the_live_server(route):
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_live_server)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda req: errors.append(f"{req.url}: {req.failure}"))
    page.on("response", lambda response: check_response(response, errors))
    page.on("console", lambda message: check_console(message, errors))
    yield page
    context.close()
    assert not blocked, f"the page tried to leave the live server: {blocked}"
    assert not errors, errors


def check_response(response, errors):
    # Chromium asks for a favicon of its own accord; the site has none.
    if response.status >= 400 and not response.url.endswith("/favicon.ico"):
        errors.append(f"{response.url}: {response.status}")


def check_console(message, errors):
    # Chromium reports what a page's policy refused ("Refused to apply inline style because it
    # violates the following Content Security Policy directive …") as console errors.
    if message.type == "error" and "Content Security Policy" in message.text:
        errors.append(f"{message.location.get('url')}: {message.text}")


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def open_page(page, url):
    response = page.goto(url)
    assert response.status == 200, url
    return response


def test_every_kind_of_public_page_opens(page, site):
    pages = {
        "home": ("/", "Are the recommendations being implemented?"),
        "document": ("/documents/WRC-2024/", "Migration Does Not Start at the US Border"),
        "recommendation": (
            "/documents/HILL-2021/recommendations/HILL-2021-4/",
            "Open alternatives to irregular migration",
        ),
        "agencies": ("/agencies/", "Agencies"),
        "agency": ("/agencies/uscis/", "U.S. Citizenship and Immigration Services"),
        "subscribe": ("/subscribe/", "Subscribe to progress digests"),
    }
    for name, (path, heading) in pages.items():
        open_page(page, site + path)
        assert heading in page.locator("h1").inner_text(), name
        screenshot(page, name)

    open_page(page, f"{site}/search/?q=asylum")
    results = page.locator("main a[href*='/recommendations/']")
    assert results.count() > 0
    assert "asylum" in page.locator("main").inner_text().lower()
    screenshot(page, "search")


def test_a_visitor_follows_links_from_home_to_the_evidence(page, site):
    open_page(page, site + "/")
    page.get_by_role("link", name=re.compile("^Migration Does Not Start at the US Border")).click()
    page.wait_for_url(f"{site}/documents/WRC-2024/")
    page.locator("a.rec-title", has_text="WRC-2024-1.6").click()
    page.wait_for_url(f"{site}/documents/WRC-2024/recommendations/WRC-2024-1.6/")
    timeline = page.locator(".timeline-entry")
    assert timeline.count() == 1
    assert "In progress" in timeline.inner_text()
    evidence_link = timeline.get_by_role("link", name=CAM_REPORT)
    # Followed no further: the tests stay on 127.0.0.1.
    assert evidence_link.get_attribute("href") == CAM_REPORT_URL
    assert "noopener" in evidence_link.get_attribute("rel")
    screenshot(page, "recommendation-with-evidence")


def test_a_visitor_asks_what_moved_in_a_document(page, site):
    open_page(page, site + "/documents/WRC-2024/")
    page.get_by_role("link", name="What moved: status changes in this document").click()
    page.wait_for_url(f"{site}/moved/?document=WRC-2024")
    assert "No status changed in these days" in page.locator("main").inner_text()
    page.get_by_role("textbox", name="From").fill("2016-01-01")
    page.get_by_role("button", name="Show changes").click()
    page.wait_for_url(re.compile(r"from=2016-01-01"))
    changes = page.locator(".moved-list > li")
    assert changes.count() == 1
    text = changes.inner_text()
    assert "WRC-2024-1.6" in text and "No earlier status" in text and "In progress" in text
    assert page.get_by_role("img", name="moved to").count() == 1
    evidence = changes.get_by_role("link", name=CAM_REPORT)
    assert evidence.get_attribute("href") == CAM_REPORT_URL
    screenshot(page, "what-moved")


def test_the_progress_chart_draws_with_a_text_alternative(page, site):
    open_page(page, site + "/documents/HILL-2021/")
    chart = page.get_by_role("img", name=re.compile("Progress of HILL-2021 over time"))
    chart.wait_for()
    box = chart.bounding_box()
    assert box["width"] > 100 and box["height"] > 50
    assert chart.evaluate("svg => svg.tagName") == "svg"
    assert chart.locator("desc").text_content().strip()
    screenshot(page, "document-chart")


def test_badges_load_as_images(page, site):
    open_page(page, site + "/")
    badges = {
        "document": f"{site}/badges/documents/HILL-2021.svg",
        "recommendation": f"{site}/badges/documents/HILL-2021/recommendations/HILL-2021-4.svg",
    }
    # As a site that embeds them would: plain <img> elements.
    page.evaluate(
        """badges => {
            document.querySelector("main").replaceChildren(...Object.entries(badges).map(
                ([name, src]) => Object.assign(document.createElement("img"), {id: name, src})))
        }""",
        badges,
    )
    for name in badges:
        image = page.locator(f"img#{name}")
        # Waited for by a function, not a string: the page's policy forbids eval.
        image.evaluate("img => img.decode()")
        assert image.evaluate("img => img.naturalWidth") > 0, name
        assert image.evaluate("img => img.naturalHeight") == 20, name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("main").screenshot(path=SCREENSHOTS / "badges.png")

    open_page(page, badges["recommendation"])
    assert page.get_by_role("img", name=re.compile("HILL-2021-4 .*Stalled")).count()


def test_the_updates_feed_is_discoverable_and_reads_as_atom(page, site):
    open_page(page, site + "/documents/WRC-2024/")
    feed_link = page.locator("head link[rel=alternate][type='application/atom+xml']")
    hrefs = [feed_link.nth(i).get_attribute("href") for i in range(feed_link.count())]
    assert "/documents/WRC-2024/feed/" in hrefs
    assert "/feeds/updates/" in hrefs
    open_page(page, site + "/agencies/uscis/")
    assert feed_link.first.get_attribute("href") == "/feeds/updates/"
    assert feed_link.last.get_attribute("href") == "/agencies/uscis/feed/"
    response = open_page(page, site + "/documents/WRC-2024/feed/")
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = page.request.get(site + "/documents/WRC-2024/feed/").text()
    assert feed.count("<entry>") == 1
    assert f'href="{site}/documents/WRC-2024/recommendations/WRC-2024-1.6/#change-' in feed
    screenshot(page, "feed")


def test_the_keyboard_reaches_the_skip_link_and_the_main_links(page, site):
    open_page(page, site + "/")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    # The skip link skipped the header: the next stop is inside <main>.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.closest('main') !== null")
    reached = [page.evaluate("() => document.activeElement.getAttribute('href')")]
    while "/documents/WRC-2024/" not in reached and len(reached) < 40:
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.getAttribute('href')"))
    assert "/documents/WRC-2024/" in reached
    assert "/documents/HILL-2021/" in reached or len(reached) < 40
    screenshot(page, "keyboard-focus")


def test_a_visitor_switches_to_spanish(page, site):
    open_page(page, site + "/documents/WRC-2024/")
    english = page.locator("h2#progress-heading").inner_text()
    page.select_option("#language", "es")
    with page.expect_navigation():
        page.locator("form.language-form button[type=submit]").click()
    assert page.url == f"{site}/documents/WRC-2024/"
    assert page.locator("html").get_attribute("lang") == "es"
    assert page.locator("h2#progress-heading").inner_text() == "Avance"
    assert page.locator("h2#progress-heading").inner_text() != english
    screenshot(page, "document-es")

    # The choice sticks, and the badges follow it.
    open_page(page, site + "/badges/documents/WRC-2024.svg")
    assert page.get_by_role("img", name=re.compile("de avance")).count() == 1


# The pages behind the public ones, each under its own Content-Security-Policy
# (tracker/content_policy.py): the page fixture fails a test on any violation.


def test_a_kept_copy_shows_as_text_in_its_sandbox(page, site):
    evidence = Evidence.objects.get(title=CAM_REPORT)
    source = Source.objects.create(url=CAM_REPORT_URL, title="The minors program expands")
    source.evidence.add(evidence)
    SourceVersion.objects.create(
        source=source,
        content_hash="kept",
        title="The minors program expands",
        text="<script>document.title = 'ran'</script>The program now covers more relatives.",
        url=CAM_REPORT_URL,
        http_status=200,
        fetched_at=evidence.updated_at,
    )
    open_page(page, f"{site}/documents/WRC-2024/recommendations/WRC-2024-1.6/")
    page.get_by_role("link", name=re.compile("Kept copy of the source")).click()
    page.wait_for_url(re.compile(r"/sources/versions/\d+/$"))

    kept = page.locator(".kept-text")
    assert "<script>" in kept.inner_text()
    assert "The program now covers more relatives." in kept.inner_text()
    assert page.title().startswith("Kept copy")
    # Our stylesheet still applies inside the sandbox.
    assert kept.evaluate("el => getComputedStyle(el).whiteSpace") == "pre-wrap"
    screenshot(page, "kept-copy")

    # The header's forms still work from the sandboxed page.
    page.fill("#site-search", "asylum")
    with page.expect_navigation():
        page.locator("form.search-form button[type=submit]").click()
    assert page.url.startswith(f"{site}/search/?q=asylum")


def test_staff_work_in_the_admin_under_its_policy(page, site):
    UserFactory(
        username="staff", password="a long staff password", is_staff=True, is_superuser=True
    )
    SubscriptionFactory(email="reader@example.org", documents=list(Document.objects.all()[:1]))
    open_page(page, f"{site}/admin/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "a long staff password")
    with page.expect_navigation():
        page.locator("input[type=submit]").click()
    assert page.locator("#site-name").inner_text() == "Tracker"

    recommendation = Recommendation.objects.get(code="WRC-2024-1.6")
    subscription = Subscription.objects.get(email="reader@example.org")
    for name, path in {
        "admin-recommendations": "/admin/tracker/recommendation/?q=asylum",
        "admin-recommendation": f"/admin/tracker/recommendation/{recommendation.pk}/change/",
        "admin-history": f"/admin/tracker/recommendation/{recommendation.pk}/auditlog/",
        "admin-digest-preview": f"/admin/tracker/subscription/{subscription.pk}/preview/",
    }.items():
        open_page(page, site + path)
        screenshot(page, name)

    # The admin's own scripts run: the owners' agency field is an autocomplete widget.
    open_page(page, f"{site}/admin/tracker/recommendation/{recommendation.pk}/change/")
    assert page.locator(".select2-container").count() > 0

    # The schedules' page reads the chosen crontab out (a script file, not inline script).
    crontab = CrontabSchedule.objects.create(minute="0", hour="6", timezone="UTC")
    open_page(page, f"{site}/admin/django_celery_beat/periodictask/add/")
    page.select_option("#id_crontab", str(crontab.pk))
    reading = page.locator(".field-crontab_translation .readonly")
    assert reading.inner_text() == crontab.human_readable
    screenshot(page, "admin-schedule")


def test_staff_upload_review_and_confirm_an_import(page, site, tmp_path):
    UserFactory(
        username="staff", password="a long staff password", is_staff=True, is_superuser=True
    )
    open_page(page, f"{site}/admin/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "a long staff password")
    with page.expect_navigation():
        page.locator("input[type=submit]").click()
    brief = tmp_path / "statement.md"
    brief.write_text(
        "# Statement on children at the border\n\n## Recommendations\n\n"
        "The administration should:\n\n"
        "- Reopen the Central American Minors program to all eligible parents.\n"
        "- Fund interpreters for every child appearing before the immigration courts.\n"
    )
    open_page(page, f"{site}/admin/tracker/document/import/")
    page.set_input_files("#id_file", str(brief))
    page.fill("#id_code", "ST-2025")
    page.select_option("#id_publisher", label=str(Document.objects.first().publisher))
    with page.expect_navigation():
        page.locator("input[type=submit]").click()
    assert "Review the import of ST-2025" in page.locator("h1").inner_text()
    assert not Document.objects.filter(code="ST-2025").exists()
    screenshot(page, "admin-import-review")

    interpreters = page.locator("fieldset.proposal-item").nth(1)
    interpreters.get_by_label("Lead agency").fill("EOIR")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm and import").click()
    assert "Imported ST-2025" in page.locator(".messagelist").inner_text()
    recommendation = Recommendation.objects.get(text__startswith="Fund interpreters")
    assert recommendation.ownerships.get(role="lead").agency.acronym == "EOIR"


def test_a_progress_report_prints_without_the_site_around_it(page, site):
    open_page(page, f"{site}/documents/WRC-2024/")
    with page.expect_navigation():
        page.get_by_role("link", name="Progress report to print or download").click()
    assert page.locator("h2#report-heading").inner_text().startswith("WRC-2024:")
    page.emulate_media(media="print")
    assert not page.locator(".site-header").is_visible()
    assert not page.locator(".report-form").is_visible()
    assert page.locator(".report-as-of").is_visible()
    assert page.locator(".report-table tbody tr").count() > 20
    screenshot(page, "report-print")


def test_a_document_page_reads_on_a_phone(page, site):
    page.set_viewport_size({"width": 390, "height": 844})
    open_page(page, site + "/documents/WRC-2024/")
    # Nothing makes the page itself scroll sideways; the chart scrolls in its own box at a
    # readable size instead of shrinking its labels.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    chart = page.locator("svg.chart")
    assert chart.bounding_box()["width"] >= 500
    figure = page.locator(".chart-figure")
    assert figure.bounding_box()["width"] <= 390
    label = page.locator("svg.chart text.axis").first
    assert label.bounding_box()["height"] >= 10  # about 11 px text, not 7
    assert page.locator(".recommendation .badge").first.is_visible()
    screenshot(page, "document-phone")


# Every kind of public page, the new ones included, in both languages.
ACCESSIBLE_PAGES = [
    "/",
    "/documents/WRC-2024/",
    "/documents/WRC-2024/recommendations/WRC-2024-1/",
    "/documents/HILL-2021/recommendations/HILL-2021-4/",
    "/agencies/",
    "/agencies/dhs/",
    "/search/?q=asylum",
    "/moved/",
    "/reports/progress/",
    "/reports/progress/?document=WRC-2024&since=2016-01-01",
    "/methodology/",
    "/updates/",
    "/documents/WRC-2024/updates/",
    "/subscribe/",
]


@pytest.mark.parametrize("language", ["en-US", "es-MX"])
def test_every_public_page_has_no_accessibility_violations(browser, site, language):
    """axe-core (bundled by axe-playwright-python, run in the page) finds no violation of
    any impact on any kind of public page."""
    from axe_playwright_python.sync_playwright import Axe

    context = browser.new_context(locale=language)
    page = context.new_page()
    axe = Axe()
    found = {}
    for path in ACCESSIBLE_PAGES:
        open_page(page, site + path)
        violations = axe.run(page).response["violations"]
        if violations:
            found[path] = [(v["id"], v["impact"], len(v["nodes"])) for v in violations]
    context.close()
    assert found == {}


def test_the_api_docs_render_and_call_the_api(page, site):
    open_page(page, f"{site}/api/docs/")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "Tracker API" in page.locator(".swagger-ui .info .title").inner_text()
    operation = page.locator(".opblock-summary-path[data-path='/api/v1/agencies/']").first
    operation.click()
    page.get_by_role("button", name="Try it out").click()
    with page.expect_response(lambda response: "/api/v1/agencies/" in response.url) as answer:
        page.get_by_role("button", name="Execute").click()
    assert answer.value.status == 200
    screenshot(page, "api-docs")


def test_the_browsable_api_shows_and_filters(page, site):
    open_page(page, f"{site}/api/v1/recommendations/")
    assert "Recommendation List" in page.locator(".page-header").inner_text()
    # Bootstrap's script opens the filters dialog.
    page.get_by_role("button", name="Filters").click()
    page.locator("#filtersModal").wait_for(state="visible")
    screenshot(page, "browsable-api")


# The width of a digest progress bar's green (done) part.
DONE_WIDTH = """bar => Array.from(bar.querySelectorAll("td"))
    .filter(cell => getComputedStyle(cell).backgroundColor === "rgb(46, 125, 50)")
    .reduce((width, cell) => width + cell.getBoundingClientRect().width, 0)"""


def test_a_digest_reads_on_a_phone(page, site, smtp_server):
    """The HTML part of a digest, as a phone 390 px wide shows it: titles across the
    screen, every progress bar drawn, nothing wider than the screen."""
    document = Document.objects.get(code="WRC-2024")
    agency = Agency.objects.filter(ownerships__isnull=False).order_by("name").first()
    subscriber = SubscriptionFactory(
        email="phone@example.org", documents=[document], agencies=[agency]
    )
    last_week = digests.digest_period("weekly", now=timezone.now())
    DigestDelivery.objects.create(  # the previous digest, so progress shows its movement
        subscription=subscriber,
        period=last_week.key,
        period_start=last_week.start,
        period_end=last_week.end,
        covered_from=subscriber.confirmed_at,
        covered_until=timezone.now() - datetime.timedelta(hours=1),
        state="sent",
    )
    moved = document.recommendations.filter(is_published=True, status="not_assessed").first()
    moved.record_status(
        "implemented", effective_on=timezone.localdate(), evidence=[EvidenceFactory()]
    )
    assert digests.send_due_digests(current=True) == {"sent": 1}
    [message] = smtp_server.to("phone@example.org")
    html = message.get_body(preferencelist=("html",)).get_content()

    page.set_viewport_size({"width": 390, "height": 844})
    page.set_content(html)
    for title in (moved.title, document.title, agency.name):
        link = page.locator("a", has_text=title).first
        assert link.is_visible()
        # Its line spans the screen, not a narrow table column.
        assert link.evaluate("a => a.parentElement.getBoundingClientRect().width") > 250
    bars = page.get_by_role("progressbar")
    assert bars.count() == 2
    for index in range(bars.count()):
        bar = bars.nth(index)
        box = bar.bounding_box()
        assert bar.is_visible() and box["width"] > 250 and box["height"] >= 8
        # The green part is as long as the share done.
        percent = int(bar.get_attribute("aria-valuenow"))
        filled = bar.evaluate(DONE_WIDTH)
        assert abs(filled - box["width"] * percent / 100) < 0.05 * box["width"]
    assert "→" in page.get_by_role("progressbar").first.locator("xpath=..").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "digest-phone")


# --- the staff's workspace ----------------------------------------------------------------

# The admin pages of ours that the accessibility and layout checks visit, besides the change
# page of one row of each of Tracker's models.
STAFF_SIZE = {"width": 1366, "height": 900}


def sign_in(page, site, username, password):
    open_page(page, f"{site}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.locator("input[type=submit]").click()


def staff_work_waiting():
    """A change alert, a feed entry, an import awaiting review and a failed digest, beside
    the demo's data: a row for every page the checks visit."""
    from tracker import proposals
    from tracker.models import ChangeAlert, FeedEntry

    source = Source.objects.create(url=CAM_REPORT_URL, title="The minors program expands")
    source.recommendations.add(Recommendation.objects.get(code="WRC-2024-1.6"))
    version = SourceVersion.objects.create(
        source=source,
        content_hash="b" * 64,
        title="The minors program expands",
        text="The program now covers more relatives.",
        url=CAM_REPORT_URL,
        http_status=200,
        fetched_at=timezone.now(),
    )
    ChangeAlert.objects.create(
        source=source,
        version=version,
        diff="--- before\n+++ after\n-The program is paused.\n+The program covers relatives.\n",
    )
    FeedEntry.objects.create(
        source=source, guid="cam-1", link=CAM_REPORT_URL, title="CAM reopens for relatives"
    )
    proposals.propose_import(
        "# Statement\n\n## Recommendations\n\nThe administration should:\n\n"
        "- Reopen the Central American Minors program.\n",
        code="ST-2025",
        fmt="markdown",
        publisher=Document.objects.first().publisher,
    )
    subscriber = SubscriptionFactory(email="reader@example.org")
    DigestDelivery.objects.create(
        subscription=subscriber,
        period="2026-W01",
        period_start=datetime.date(2026, 1, 5),
        period_end=datetime.date(2026, 1, 11),
        state=DigestDelivery.State.FAILED,
        error="SMTP refused",
    )


def staff_pages(user):
    """The admin pages of ours `user` may open: the start page, the list and a change page
    (its first row) of each of Tracker's models, the record-status, audit-log, what-moved,
    import, digest-preview and accept pages (the import review is a proposal's change page)."""
    from types import SimpleNamespace

    from django.apps import apps
    from django.contrib import admin

    from tracker.models import ChangeAlert, FeedEntry
    from tracker.proposals import IMPORT_PERMISSIONS

    as_user = SimpleNamespace(user=user)
    recommendation = Recommendation.objects.get(code="WRC-2024-1.6")
    pages = ["/admin/", "/admin/tracker/statuschange/moved/"]
    for model in apps.get_app_config("tracker").get_models():
        model_admin = admin.site._registry.get(model)
        row = model._default_manager.order_by("pk").first()
        if model_admin and model_admin.has_view_permission(as_user):
            pages.append(f"/admin/tracker/{model._meta.model_name}/")
        if model_admin and row is not None and model_admin.has_view_permission(as_user, row):
            pages.append(f"/admin/tracker/{model._meta.model_name}/{row.pk}/change/")
    if user.has_perm("tracker.add_statuschange"):
        pages.append(f"/admin/tracker/recommendation/{recommendation.pk}/record-status/")
    if user.has_perm("auditlog.view_logentry"):
        pages.append(f"/admin/tracker/recommendation/{recommendation.pk}/auditlog/")
    if user.has_perms(IMPORT_PERMISSIONS):
        pages.append("/admin/tracker/document/import/")
    if user.has_perm("tracker.view_subscription"):
        subscription = Subscription.objects.order_by("pk").first()
        pages.append(f"/admin/tracker/subscription/{subscription.pk}/preview/")
    if user.has_perm("tracker.add_evidence"):
        pages.append(f"/admin/tracker/changealert/{ChangeAlert.objects.get().pk}/accept/")
        pages.append(f"/admin/tracker/feedentry/{FeedEntry.objects.get().pk}/accept/")
    return pages


@pytest.mark.parametrize("who", ["admin", "editor"])
def test_every_staff_page_has_no_serious_accessibility_violations(browser, site, who):
    """axe-core finds no critical or serious violation on the admin pages of ours, for an
    administrator and for an Editor (the demo's two logins)."""
    from axe_playwright_python.sync_playwright import Axe

    from tests.support.staff import role

    user = UserFactory(username=who, password=f"{who} password", is_staff=True)
    if who == "admin":
        user.is_superuser = True
        user.save()
    else:
        user.groups.add(role("Editor"))
    staff_work_waiting()
    context = browser.new_context(locale="en-US", viewport=STAFF_SIZE)
    page = context.new_page()
    sign_in(page, site, who, f"{who} password")
    axe = Axe()
    found = {}
    visited = staff_pages(user)
    for path in visited:
        response = page.goto(site + path)
        assert response.status == 200, path
        violations = axe.run(page).response["violations"]
        serious = [v for v in violations if v["impact"] in {"critical", "serious"}]
        if serious:
            found[path] = [
                (v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in serious
            ]
    context.close()
    assert len(visited) >= (40 if who == "admin" else 28)
    assert found == {}


def overlap(a, b):
    """Whether two bounding boxes share any area."""
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def test_the_workspace_fits_a_laptop_screen(page, site):
    """At 1366 by 900 the recommendation list fits its box and the change page's buttons stay
    clear of its heading; the start page says what needs attention."""
    UserFactory(
        username="staff", password="a long staff password", is_staff=True, is_superuser=True
    )
    staff_work_waiting()
    page.set_viewport_size(STAFF_SIZE)
    sign_in(page, site, "staff", "a long staff password")

    attention = page.locator("section.attention")
    assert "1 unreviewed change alert" in attention.inner_text()
    assert attention.locator("ins.diff-add").first.inner_text() == "+The program covers relatives."
    headings = page.locator("#content-main h2").all_inner_texts()
    assert headings.index("Needs attention") < headings.index(
        "Administration (administrators only)"
    )
    screenshot(page, "admin-start")

    open_page(page, f"{site}/admin/tracker/changealert/")
    snippet = page.locator("#result_list td.field-diff_preview").first
    assert snippet.locator("del").inner_text() == "-The program is paused."
    width = page.locator("#changelist .results").evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert width[0] <= width[1], width
    screenshot(page, "admin-alerts-1366")

    open_page(page, f"{site}/admin/tracker/recommendation/")
    results = page.locator("#changelist .results")
    width = results.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert width[0] <= width[1], width
    # Titles stop at three lines (the longest demo titles ran to five to seven).
    heights = page.locator("#result_list td.field-title a").evaluate_all(
        "links => links.map(a => a.getBoundingClientRect().height)"
    )
    line = float(
        page.locator("#result_list td.field-title a")
        .first.evaluate("el => getComputedStyle(el).lineHeight")
        .removesuffix("px")
    )
    assert max(heights) <= 3 * line + 1, (max(heights), line)
    screenshot(page, "admin-recommendations-1366")

    recommendation = Recommendation.objects.get(code="WRC-2024-1.6")
    open_page(page, f"{site}/admin/tracker/recommendation/{recommendation.pk}/change/")
    headings = [h.bounding_box() for h in page.locator("#content h1, #content > h2").all()]
    tools = [tool.bounding_box() for tool in page.locator(".object-tools li").all()]
    assert len(headings) == 2 and len(tools) >= 3
    assert not any(overlap(tool, heading) for tool in tools for heading in headings)
    assert "_recommendations object" not in page.locator("#content").inner_text()
    screenshot(page, "admin-recommendation-1366")

    open_page(page, f"{site}/admin/tracker/recommendation/{recommendation.pk}/record-status/")
    with page.expect_navigation():
        page.get_by_role("button", name="Record status change").click()
    evidence = page.locator(".stacked-fields .form-row").filter(has=page.locator(".selector"))
    label = evidence.locator("label").first.bounding_box()
    picker = evidence.locator(".selector").bounding_box()
    assert label["y"] + label["height"] <= picker["y"] + 1
    assert "needs evidence or a rationale" in page.locator(".errorlist").inner_text()
    screenshot(page, "admin-record-status-1366")
