"""Server-rendered SVG charts: readable without JavaScript, described for screen readers."""

from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _

# The count a series point keeps for recommendations nobody has assessed yet.
NOT_ASSESSED = "not_assessed"

# The drawing's size in SVG units; CSS scales it to the page's width.
WIDTH, HEIGHT = 640, 240
# Room for the axis labels: left, right, top, bottom.
MARGIN = (44, 16, 12, 28)


def progress_share(point):
    return point["progress"]


def assessed_share(point):
    """The share of the point's recommendations assessed by then, in 0..1."""
    total = sum(point["counts"].values())
    return assessed_count(point) / total if total else 0.0


def assessed_count(point):
    return sum(point["counts"].values()) - point["counts"].get(NOT_ASSESSED, 0)


def series_points(series, *, share=progress_share, width=WIDTH, height=HEIGHT, margin=MARGIN):
    """Return [(x, y)] for each period of a progress series: x spreads the periods evenly
    across the plot, y runs from 0 % at the bottom to 100 % at the top of `share` (weighted
    progress by default)."""
    left, right, top, bottom = margin
    plot_width, plot_height = width - left - right, height - top - bottom
    steps = max(len(series) - 1, 1)
    return [
        (
            round(left + plot_width * index / steps, 1),
            round(top + plot_height * (1 - share(point)), 1),
        )
        for index, point in enumerate(series)
    ]


def progress_chart(series, *, chart_id, title, description):
    """Return an inline SVG line chart of a progress series (from progress.progress_series).

    The SVG names itself with <title> and <desc> (role="img"), so a screen reader announces
    the summary; the page gives the figures as a table too. A dashed line shows the share
    assessed, so progress low because little is assessed does not read as progress refused.
    """
    left, right, top, bottom = MARGIN
    baseline = HEIGHT - bottom
    points = series_points(series)
    gridlines = format_html_join(
        "",
        '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
        '<text class="axis" x="{}" y="{}" text-anchor="end">{}%</text>',
        (
            (left, WIDTH - right, y, y, left - 6, y + 4, percent)
            for percent in (0, 50, 100)
            for y in [round(top + (baseline - top) * (1 - percent / 100), 1)]
        ),
    )
    line = " ".join(f"{x},{y}" for x, y in points)
    assessed_line = " ".join(f"{x},{y}" for x, y in series_points(series, share=assessed_share))
    area = ""
    if points:
        area = f"{points[0][0]},{baseline} {line} {points[-1][0]},{baseline}"
    markers = format_html_join(
        "",
        '<circle class="{}" cx="{}" cy="{}" r="{}"><title>{}</title></circle>',
        (
            (
                "point changed" if change else "point",
                x,
                y,
                5 if change else 3,
                point_label(point, change),
            )
            for (x, y), point, change in zip(points, series, changes_of(series), strict=True)
        ),
    )
    ticks = ""
    if series:
        ticks = format_html(
            '<text class="axis" x="{}" y="{}" text-anchor="start">{}</text>'
            '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
            left,
            HEIGHT - 8,
            period_name(series[0]["period_end"]),
            WIDTH - right,
            HEIGHT - 8,
            period_name(series[-1]["period_end"]),
        )
    return format_html(
        '<svg class="chart" id="{id}" viewBox="0 0 {w} {h}" role="img" '
        'aria-labelledby="{id}-title {id}-desc" preserveAspectRatio="xMidYMid meet">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>'
        '{grid}<polygon class="area" points="{area}"/>'
        '<polyline class="assessed" points="{assessed}"/>'
        '<polyline class="line" points="{line}"/>{markers}{ticks}</svg>',
        id=chart_id,
        w=WIDTH,
        h=HEIGHT,
        title=title,
        desc=description,
        grid=gridlines,
        area=area,
        line=line,
        assessed=assessed_line,
        markers=markers,
        ticks=ticks,
    )


def changes_of(series):
    """Each period's change in percentage points from the one before (0 for the first): the
    chart marks the periods in which something moved."""
    percents = [_percent(point) for point in series]
    return (
        [now - before for before, now in zip([percents[0], *percents], percents, strict=False)]
        if percents
        else []
    )


def point_label(point, change):
    """A marker's title: "May 2024: 50% (3 of 4 assessed), +6" when progress moved."""
    label = f"{period_name(point['period_end'])}: {point_summary(point)}"
    if change:
        label += f", {change:+d}"
    return label


def period_name(day):
    """The month and year of `day`, in the visitor's language."""
    return date_format(day, "YEAR_MONTH_FORMAT")


def _percent(point):
    return round(point["progress"] * 100)


def point_summary(point):
    """One period's figures in words: "50% (3 of 4 assessed)"."""
    return _("%(percent)s%% (%(assessed)s of %(total)s assessed)") % {
        "percent": _percent(point),
        "assessed": assessed_count(point),
        "total": sum(point["counts"].values()),
    }


def series_rows(series):
    """Return the series as table rows: period end, percent, how many were assessed out of
    how many, and counts by status."""
    return [
        {
            "period_end": point["period_end"],
            "percent": _percent(point),
            "assessed": assessed_count(point),
            "total": sum(point["counts"].values()),
            "counts": point["counts"],
        }
        for point in series
    ]
