import datetime
import xml.etree.ElementTree as ET

from django.utils import translation

from tracker import charts

SVG = "{http://www.w3.org/2000/svg}"


def point(day, progress, implemented=0):
    return {
        "period_end": day,
        "counts": {"not_assessed": 2 - implemented, "implemented": implemented},
        "progress": progress,
    }


SERIES = [
    point(datetime.date(2024, 7, 31), 0.0),
    point(datetime.date(2024, 8, 31), 0.5, implemented=1),
    point(datetime.date(2024, 9, 30), 1.0, implemented=2),
]


def parse(svg):
    return ET.fromstring(f'<svg xmlns="http://www.w3.org/2000/svg"{svg[4:]}')


def test_points_spread_periods_across_the_plot_and_rise_with_progress():
    points = charts.series_points(SERIES, width=200, height=100, margin=(10, 10, 10, 10))

    assert points == [(10, 90), (100, 50), (190, 10)]


def test_a_single_period_sits_at_the_left_edge():
    points = charts.series_points(SERIES[:1], width=200, height=100, margin=(10, 10, 10, 10))

    assert points == [(10, 90)]


def test_chart_names_itself_for_screen_readers():
    svg = charts.progress_chart(
        SERIES, chart_id="c1", title="Progress of DOC-1", description="From 0% to 100%."
    )
    root = parse(svg)

    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "Progress of DOC-1"
    assert root.find(f"{SVG}desc").text == "From 0% to 100%."


def test_chart_draws_one_marker_per_period_with_its_figure():
    with translation.override("en"):
        svg = charts.progress_chart(SERIES, chart_id="c", title="t", description="d")
    markers = parse(svg).findall(f"{SVG}circle")

    assert [marker.find(f"{SVG}title").text for marker in markers] == [
        "July 2024: 0% (0 of 2 assessed)",
        "August 2024: 50% (1 of 2 assessed), +50",
        "September 2024: 100% (2 of 2 assessed), +50",
    ]
    assert parse(svg).find(f"{SVG}polyline[@class='line']").get("points").count(",") == 3


def test_a_dashed_line_shows_the_share_assessed_beside_progress():
    series = [{**point, "progress": 0.0} for point in SERIES]  # nothing done at any time
    root = parse(charts.progress_chart(series, chart_id="c", title="t", description="d"))

    def heights(css_class):
        points = root.find(f"{SVG}polyline[@class='{css_class}']").get("points").split()
        return [float(pair.split(",")[1]) for pair in points]

    assert len(set(heights("line"))) == 1  # progress stays at 0%
    assessed = heights("assessed")
    assert assessed[0] == heights("line")[0] and assessed[0] > assessed[1] > assessed[2]


def test_chart_labels_follow_the_language():
    with translation.override("es"):
        svg = charts.progress_chart(SERIES, chart_id="c", title="t", description="d")

    assert "julio de 2024" in svg


def test_chart_escapes_its_title_and_description():
    svg = charts.progress_chart(
        SERIES,
        chart_id="c",
        title="<script>alert(1)</script>",
        description='"><img src=x onerror=alert(1)>',
    )

    assert "<script>" not in svg
    assert "<img" not in svg
    assert parse(svg).find(f"{SVG}title").text == "<script>alert(1)</script>"


def test_an_empty_series_gives_an_empty_chart_not_an_error():
    svg = charts.progress_chart([], chart_id="c", title="t", description="d")

    assert parse(svg).findall(f"{SVG}circle") == []


def test_series_rows_give_percentages_and_counts_for_the_table():
    rows = charts.series_rows(SERIES)

    assert [row["percent"] for row in rows] == [0, 50, 100]
    assert [(row["assessed"], row["total"]) for row in rows] == [(0, 2), (1, 2), (2, 2)]
    assert rows[1]["counts"] == {"not_assessed": 1, "implemented": 1}


def test_the_periods_in_which_progress_moved_are_marked():
    series = [*SERIES[:2], point(datetime.date(2024, 9, 30), 0.5, implemented=1), SERIES[2]]
    with translation.override("en"):
        svg = charts.progress_chart(series, chart_id="c", title="t", description="d")
    markers = parse(svg).findall(f"{SVG}circle")

    assert [marker.get("class") for marker in markers] == [
        "point",
        "point changed",
        "point",
        "point changed",
    ]
    titles = [marker.find(f"{SVG}title").text for marker in markers]
    assert titles[2] == "September 2024: 50% (1 of 2 assessed)"
