"""Pages the demo serves itself, under /demo-sources/, for its watched sources to look at.

Only in demo mode (settings.TRACKER_DEMO, which `make demo` sets); elsewhere they are 404s.

- A newsroom page that gains a release each step (STEP_SECONDS), and its Atom feed, whose
  entries appear at the same pace, until every release is out (LAST_STEP). What they show
  depends only on the step, counted from the first time any of them is served: a check and
  the next one, a check interval (at least a step) later, always see different steps until
  the last, so the second check of the newsroom raises a change alert and finds a new entry.
- A stand-in page for each news report of the demo's evidence: its title, date and quoted
  excerpt (the demo keeps no more of the article), never changing.

The releases are made up for the demo and say so; they touch the demo's recommendations so
that the feed's entries come with suggestions.
"""

import datetime
import functools
import threading
import time

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import format_html
from django.utils.text import slugify

from .data import read_demo_data

# Seconds between two newsroom steps; the demo checks its newsroom this often.
STEP_SECONDS = 20
# Where the demo serves these pages: each source's URL is the site's address plus one of them.
NEWSROOM_PATH = "/demo-sources/newsroom/"
NEWSROOM_FEED_PATH = "/demo-sources/newsroom/feed.xml"
EVIDENCE_PATH = "/demo-sources/evidence/{slug}/"

# The newsroom's releases, oldest first: (title, text, codes of the recommendations they touch).
RELEASES = [
    (
        "Safe Mobility Offices extend eligibility to more applicants (demo release)",
        "Safe Mobility Offices in host countries will take applications from more people, "
        "widening access and eligibility for refugee resettlement and other legal pathways.",
        ["WRC-2024-2", "WRC-2024-2.1"],
    ),
    (
        "Funding for shelters in Mexico announced (demo release)",
        "The Bureau of Population, Refugees, and Migration will fund shelters in Mexico that "
        "receive people waiting to seek protection, and Mexico's asylum system.",
        ["WRC-2024-4", "WRC-2024-4.1"],
    ),
    (
        "USCIS updates the final dates for irregular crossings (demo release)",
        "USCIS updated the final dates for irregular crossings or interdictions that parole "
        "processes take into account.",
        ["WRC-2024-1.4"],
    ),
    (
        "Family reunification parole reaches more relatives (demo release)",
        "The administration will use its authority to expand family reunification parole "
        "processes to more relatives of people in the United States.",
        ["WRC-2024-1.6", "HILL-2021-4"],
    ),
]
# The step at which every release is out; the newsroom stays as it is from then on.
LAST_STEP = len(RELEASES) - 1
# Each release's date in the feed: fixed, so a step always reads the same.
FIRST_RELEASE_ON = datetime.datetime(2024, 9, 2, 14, 0, tzinfo=datetime.UTC)

# The clock steps are counted on; a test may replace it.
clock = time.monotonic
_first_served_at = None
_first_served_lock = threading.Lock()


def current_step():
    """Return the newsroom's step: whole STEP_SECONDS since a demo page was first served."""
    global _first_served_at
    now = clock()
    with _first_served_lock:
        if _first_served_at is None:
            _first_served_at = now
        started = _first_served_at
    return min(int((now - started) // STEP_SECONDS), LAST_STEP)


def restart_clock():
    """Count steps again from the next page served (a new demo, or a test)."""
    global _first_served_at
    with _first_served_lock:
        _first_served_at = None


def releases_out(step):
    """Return the releases out at `step`, newest first, each with its number and date."""
    return [
        {
            "number": number,
            "title": title,
            "text": text,
            "published_at": FIRST_RELEASE_ON + datetime.timedelta(days=number),
        }
        for number, (title, text, _codes) in reversed(list(enumerate(RELEASES[: step + 1])))
    ]


def stand_in_slug(evidence_title):
    return slugify(evidence_title)[:80]


def demo_only(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.TRACKER_DEMO:
            raise Http404("Demo sources are served in demo mode only.")
        return view(request, *args, **kwargs)

    return wrapped


@demo_only
def newsroom(request):
    return render(
        request,
        "tracker/demo/newsroom.html",
        {
            "releases": releases_out(current_step()),
            "feed_path": NEWSROOM_FEED_PATH,
            "step_seconds": STEP_SECONDS,
            "release_count": len(RELEASES),
        },
    )


@demo_only
def newsroom_feed(request):
    base = request.build_absolute_uri(NEWSROOM_PATH)
    feed = Atom1Feed(
        title="Demo newsroom",
        link=base,
        description="Made-up releases the Tracker demo serves to show feed monitoring.",
        feed_url=request.build_absolute_uri(NEWSROOM_FEED_PATH),
        language="en",
    )
    for release in releases_out(current_step()):
        feed.add_item(
            title=release["title"],
            link=f"{base}#release-{release['number']}",
            description=format_html("<p>{}</p>", release["text"]),
            unique_id=f"tag:tracker-demo,2024:newsroom/release-{release['number']}",
            pubdate=release["published_at"],
            updateddate=release["published_at"],
        )
    return HttpResponse(feed.writeString("utf-8"), content_type="application/atom+xml")


@demo_only
def evidence_stand_in(request, slug):
    for item in read_demo_data()["evidence"]:
        if stand_in_slug(item["title"]) == slug:
            return render(request, "tracker/demo/evidence.html", {"item": item})
    raise Http404("No demo evidence here.")


urlpatterns = [
    path("newsroom/", newsroom, name="demo_newsroom"),
    path("newsroom/feed.xml", newsroom_feed, name="demo_newsroom_feed"),
    path("evidence/<slug:slug>/", evidence_stand_in, name="demo_evidence"),
]
