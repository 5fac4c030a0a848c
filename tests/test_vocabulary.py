"""What the public reads: "not yet assessed" apart from "not started", when a status was last
verified, how much is assessed beside how much is done, and history before a document as
background. Pages, API, badges, feeds and charts say the same."""

import datetime
import re
import xml.etree.ElementTree as ET

import feedparser
import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import DocumentFactory, RecommendationFactory
from tracker.models import Recommendation

Status = Recommendation.Status
SVG = "{http://www.w3.org/2000/svg}"
# The day staff recorded the history below, and so last verified it.
RECORDED = datetime.datetime(2024, 6, 3, 15, tzinfo=datetime.UTC)


@pytest.fixture
def op_ed(db):
    """A March 2021 op-ed: one ask stalled since 2019 (before it), one assessed as not
    started, one implemented, one nobody has assessed."""
    document = DocumentFactory(
        code="HILL-2021", title="Five steps", published_on=datetime.date(2021, 3, 24)
    )
    stalled, idle, done, _unassessed = (
        RecommendationFactory(document=document, code=f"HILL-2021-{n}", title=title, position=n)
        for n, title in enumerate(
            ["Restart talks", "Fund shelters", "Open centres", "Hire judges"], start=1
        )
    )
    with time_machine.travel(RECORDED, tick=False):
        stalled.record_status(
            Status.STALLED, effective_on=datetime.date(2019, 3, 12), rationale="Talks broke off."
        )
        idle.record_status(
            Status.NOT_STARTED, effective_on=datetime.date(2021, 5, 1), rationale="Nothing yet."
        )
        done.record_status(
            Status.IMPLEMENTED, effective_on=datetime.date(2022, 1, 10), rationale="Opened."
        )
    # Staff re-verified the implemented one later, with "mark reviewed".
    Recommendation.objects.filter(pk=done.pk).update(last_reviewed_on=datetime.date(2024, 9, 2))
    return document


def text_of(html):
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def page(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return text_of(response.content.decode())


def recommendation_url(code):
    return reverse("public:recommendation", kwargs={"document": "HILL-2021", "code": code})


# -- Not yet assessed, and how much is assessed ---------------------------------------------


def test_the_document_page_tells_assessed_from_done(op_ed, client):
    text = page(client, op_ed.get_absolute_url())

    assert "3 of 4 assessed · 1 implemented" in text
    assert "the 1 not yet assessed counts as 0% done" in text
    assert "Not yet assessed (1)" in text and "Not started (1)" in text
    hire_judges = text[text.index("Hire judges") :]
    assert hire_judges.startswith("Hire judges Status Not yet assessed")


def test_a_recommendation_nobody_assessed_says_so(op_ed, client):
    unassessed = page(client, recommendation_url("HILL-2021-4"))
    idle = page(client, recommendation_url("HILL-2021-2"))

    assert "Current status Not yet assessed" in unassessed
    assert "the recommendation is not yet assessed" in unassessed
    assert "Current status Not started since May 1, 2021" in idle


def test_the_chart_shows_how_much_was_assessed_beside_progress(op_ed, client):
    response = client.get(op_ed.get_absolute_url())
    html = response.content.decode()
    inline = re.search(r"<svg class=\"chart\".*?</svg>", html, re.S).group(0)
    chart = ET.fromstring(inline.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))

    assert chart.find(f"{SVG}polyline[@class='assessed']") is not None
    last = chart.findall(f"{SVG}circle")[-1].find(f"{SVG}title").text
    assert last.endswith("(3 of 4 assessed)")
    assert "3 of 4 recommendations had been assessed" in chart.find(f"{SVG}desc").text
    assert '<th scope="col">Assessed</th>' in html


def test_the_document_badge_says_how_much_was_assessed(op_ed, client):
    response = client.get(reverse("public:badge_document", args=["HILL-2021"]))
    title = ET.fromstring(response.content).find(f"{SVG}title").text

    assert title.endswith("progress, 3 of 4 assessed")


# -- Last verified --------------------------------------------------------------------------


def test_last_verified_is_the_later_of_the_review_and_the_recorded_change(op_ed):
    by_code = {r.code: r for r in Recommendation.objects.filter(document=op_ed)}

    assert by_code["HILL-2021-1"].last_verified_on == datetime.date(2024, 6, 3)  # recorded
    assert by_code["HILL-2021-3"].last_verified_on == datetime.date(2024, 9, 2)  # reviewed
    assert by_code["HILL-2021-4"].last_verified_on is None


def test_pages_show_when_each_status_was_last_verified(op_ed, client):
    document = page(client, op_ed.get_absolute_url())
    done = page(client, recommendation_url("HILL-2021-3"))
    unassessed = page(client, recommendation_url("HILL-2021-4"))

    open_centres = document[document.index("Open centres") : document.index("Hire judges")]
    assert "Last verified Sept. 2, 2024" in open_centres
    assert document[document.index("Hire judges") :].count("Not yet verified") == 1
    assert "Last verified Sept. 2, 2024" in done
    assert "Last verified Not yet verified" in unassessed


def test_the_api_gives_last_verified_and_since(op_ed):
    api = APIClient()
    rows = api.get(reverse("api:recommendation-list"), {"document": op_ed.pk}).json()
    by_code = {row["code"]: row for row in rows["results"]}

    assert by_code["HILL-2021-3"]["last_verified_on"] == "2024-09-02"
    assert by_code["HILL-2021-4"]["last_verified_on"] is None
    assert by_code["HILL-2021-4"]["status"] == "not_assessed"
    assert by_code["HILL-2021-1"]["status_since"] == "2021-03-24"  # the document's date
    assert by_code["HILL-2021-3"]["status_since"] == "2022-01-10"


def test_a_status_badge_title_says_when_it_was_last_verified(op_ed, client):
    def title(code):
        url = reverse("public:badge_recommendation", kwargs={"document": "HILL-2021", "code": code})
        return ET.fromstring(client.get(url).content).find(f"{SVG}title").text

    assert (
        title("HILL-2021-3")
        == "HILL-2021-3 “Open centres”: Implemented (last verified Sept. 2, 2024)"
    )
    assert title("HILL-2021-4") == "HILL-2021-4 “Hire judges”: Not yet assessed (not yet verified)"


def test_a_feed_entry_says_when_the_status_was_last_verified(op_ed, client):
    response = client.get(reverse("public:feed_document", args=["HILL-2021"]))
    entries = {
        entry.title.split(":")[0]: entry for entry in feedparser.parse(response.content).entries
    }

    assert "Last verified by staff on Sept. 2, 2024." in entries["HILL-2021-3"].summary
    assert "Last verified by staff on June 3, 2024." in entries["HILL-2021-1"].summary


# -- Background history ---------------------------------------------------------------------


def test_history_before_the_document_is_background_and_the_status_reads_since_its_date(
    op_ed, client
):
    text = page(client, recommendation_url("HILL-2021-1"))

    assert "Current status Stalled since March 24, 2021 (the document's date)" in text
    assert "Background: stalled since March 12, 2019, before the document." in text
    assert "Stalled since March 12, 2019" not in text
    document = page(client, op_ed.get_absolute_url())
    assert "Last update March 12, 2019 (before the document)" in document
    assert "Jan. 10, 2022 (before" not in document
    later = page(client, recommendation_url("HILL-2021-3"))  # changed after the document
    assert "Current status Implemented since Jan. 10, 2022" in later
    assert "Before this document" not in later and "Background:" not in later
    timeline = text[text.index("Timeline of status changes") :]
    assert (
        timeline.index("No status change has been recorded since the document was published")
        < (timeline.index("Before this document"))
        < timeline.index("March 12, 2019 Stalled")
        < timeline.index("Talks broke off.")
    )


def test_spanish_readers_get_the_same_vocabulary(op_ed, client):
    def spanish(url):
        return text_of(client.get(url, HTTP_ACCEPT_LANGUAGE="es").content.decode())

    document = spanish(op_ed.get_absolute_url())
    stalled = spanish(recommendation_url("HILL-2021-1"))

    assert "3 de 4 evaluadas · 1 implementadas" in document
    assert "Aún sin evaluar (1)" in document and "Aún sin verificar" in document
    assert "desde el 24 de marzo de 2021 (fecha del documento)" in stalled
    assert "Antes de este documento" in stalled
