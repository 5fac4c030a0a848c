"""The public pages: server-rendered, no login, published recommendations only.

Every page is the same for every visitor in a language, so responses may be cached briefly
(by browsers and shared caches, per Accept-Language and Cookie) and carry ETags
(ConditionalGetMiddleware) and Last-Modified (the last change of the public data).
"""

import functools
import logging
import math
import smtplib
from itertools import groupby

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import http_date
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from django.views.i18n import set_language as django_set_language

from . import changes, charts, digests, public, reports
from .caching import cached
from .clients import client_ip
from .forms import ChangesForm, PreferencesForm, ReportForm, SubscribeForm
from .ledger import ledger_series, scope_key
from .models import (
    STATUS_WEIGHTS,
    Agency,
    Document,
    Evidence,
    Ownership,
    Recommendation,
    SourceVersion,
    StatusChange,
)
from .progress import (
    progress_by_agency,
    progress_by_document,
    rollups_of,
    rollups_of_tree,
)
from .ratelimits import count_in_window

logger = logging.getLogger(__name__)

# The query parameters public pages read (the document's status filter, the search); a page
# asked for with any other is rendered but not cached.
CACHED_QUERY_PARAMETERS = {"status", "q", "page"}
# How many recommendations a document's page lists at a time.
DOCUMENT_PAGE_SIZE = 100
# Seconds a browser or shared cache may reuse a public page before asking again.
PUBLIC_MAX_AGE = 60
# How many recent status changes and pieces of evidence the home page lists.
RECENT_LIMIT = 10
# How many status changes a page of "What moved" lists.
CHANGES_PER_PAGE = 25
# A progress chart switches from months to years beyond this many months.
MAX_MONTHS_IN_CHART = 120

Status = Recommendation.Status


def public_page(view):
    """Serve GET/HEAD only, cacheable briefly, varying by the visitor's language; rendered
    once per page, language and day until the tracked data next changes (tracker.caching)."""

    @functools.wraps(view)
    @require_safe
    @cache_control(public=True, max_age=PUBLIC_MAX_AGE)
    @vary_on_headers("Accept-Language", "Cookie")
    def wrapper(request, *args, **kwargs):
        if set(request.GET) - CACHED_QUERY_PARAMETERS:
            # Made-up parameters would each fill the cache with a copy of the page.
            return view(request, *args, **kwargs)
        # The host and scheme are in the key for the feeds' absolute links; the day for the
        # charts, which run to today.
        key = (
            "page",
            request.scheme,
            request.get_host(),
            request.get_full_path(),
            translation.get_language(),
            timezone.localdate(),
        )
        return cached(key, lambda: view(request, *args, **kwargs))

    return wrapper


def with_last_modified(response, *also):
    """Set Last-Modified to the last change of anything public pages show (and `also`), so
    that ConditionalGetMiddleware answers If-Modified-Since with 304.

    Site-wide on purpose: a draft going back to draft, or a recommendation leaving an
    agency, changes pages without any timestamp on them growing. What no timestamp records
    (an agency renamed, uncited evidence deleted) the ETag still catches.
    """
    moments = [moment for moment in (public.last_change(), *also) if moment is not None]
    if moments:
        response["Last-Modified"] = http_date(max(moments).timestamp())
    return response


def lead_ownerships():
    return Prefetch(
        "ownerships",
        queryset=Ownership.objects.filter(role=Ownership.Role.LEAD).select_related("agency"),
        to_attr="leads",
    )


@public_page
def home(request):
    documents = list(Document.objects.public().select_related("publisher"))
    summaries = progress_by_document([doc.pk for doc in documents], published_only=True)
    for document in documents:
        document.progress_summary = summaries[document.pk]
    changes = list(public.recent_status_changes(limit=RECENT_LIMIT))
    evidence = public.attach_recommendations(public.recent_evidence(limit=RECENT_LIMIT))
    response = render(
        request,
        "tracker/home.html",
        {"documents": documents, "changes": changes, "evidence": evidence},
    )
    return with_last_modified(response)


def chart_of(scope, *, start, chart_id, title):
    """Return (svg, table rows) for the public progress of a document or an agency (a ledger
    scope, see ledger.scope_key) from `start` to today, by month (or by year over long
    spans)."""
    today = timezone.localdate()
    start = min(start, today)
    months = (today.year - start.year) * 12 + today.month - start.month
    interval = "month" if months <= MAX_MONTHS_IN_CHART else "year"
    series = ledger_series(scope, interval=interval, start=start, end=today)
    first, last = series[0], series[-1]
    figures = {
        "start": round(first["progress"] * 100),
        "end": round(last["progress"] * 100),
        "from": charts.period_name(first["period_end"]),
        "to": charts.period_name(last["period_end"]),
    }
    if last["progress"] >= first["progress"]:
        description = _("Progress went from %(start)s%% to %(end)s%% between %(from)s and %(to)s.")
    else:
        description = _("Progress fell from %(start)s%% to %(end)s%% between %(from)s and %(to)s.")
    description %= figures
    description += " " + _(
        "By %(to)s, %(assessed)s of %(total)s recommendations had been assessed."
    ) % {**figures, "assessed": charts.assessed_count(last), "total": sum(last["counts"].values())}
    svg = charts.progress_chart(series, chart_id=chart_id, title=title, description=description)
    return svg, charts.series_rows(series)


@public_page
def document(request, code):
    document = get_object_or_404(Document.objects.public().select_related("publisher"), code=code)
    public_recommendations = Recommendation.objects.public().filter(document=document)
    # The whole document as plain rows (for roll-ups, the status filter and the chart's
    # start); full objects only for the page listed.
    rows = list(
        public_recommendations.order_by("position", "code").values_list(
            "pk", "parent_id", "status", "status_changed_on"
        )
    )
    rollups = rollups_of_tree([(pk, parent_id, status) for pk, parent_id, status, _ in rows])
    summary = progress_by_document([document.pk], published_only=True)[document.pk]
    first_change = min((changed for *_, changed in rows if changed), default=None)
    start = document.published_on or first_change or timezone.localdate()
    chart, chart_rows = chart_of(
        scope_key(staff=False, document=document.pk),
        start=start,
        chart_id="progress-chart",
        title=_("Progress of %(document)s over time") % {"document": document.code},
    )
    # ?status=… lists only the recommendations showing that status (the counts stay whole).
    status = request.GET.get("status")
    if status not in Status.values:
        status = None
    shown = [
        pk
        for pk, _parent, own, _changed in rows
        if status is None or (rollups[pk].status if pk in rollups else own) == status
    ]
    # A long document is listed a page at a time: rendering thousands of rows is most of
    # what its page would cost.
    listed = Paginator(shown, DOCUMENT_PAGE_SIZE).get_page(request.GET.get("page"))
    recommendations = list(
        public_recommendations.filter(pk__in=listed.object_list)
        .prefetch_related(lead_ownerships())
        .order_by("position", "code")
    )
    attach_rollups(recommendations, rollups)
    attach_urls(document, recommendations)
    sections = [
        {"title": title, "recommendations": list(items)}
        for title, items in groupby(recommendations, key=lambda r: r.section_title)
    ]
    response = render(
        request,
        "tracker/document.html",
        {
            "document": document,
            "sections": sections,
            "summary": summary,
            "statuses": status_counts(summary.counts),
            "chart": chart,
            "chart_rows": chart_rows,
            "status_names": Status.values,
            "status_filter": status,
            "listed": listed,
        },
    )
    return with_last_modified(response)


def attach_urls(document, recommendations):
    """Give each recommendation and lead agency its `public_url`, reversing each agency's
    once: a long document's page would otherwise spend much of its time in reverse()."""
    agency_urls = {}
    for recommendation in recommendations:
        recommendation.document = document
        recommendation.public_url = recommendation.get_absolute_url()
        for ownership in recommendation.leads:
            agency = ownership.agency
            if agency.slug not in agency_urls:
                agency_urls[agency.slug] = agency.get_absolute_url()
            agency.public_url = agency_urls[agency.slug]


def attach_rollups(recommendations, rollups):
    """Give each recommendation its `rollup` (None without sub-recommendations) and the
    `shown_status` a visitor reads: a parent's never contradicts its children's."""
    for recommendation in recommendations:
        recommendation.rollup = rollups.get(recommendation.pk)
        recommendation.shown_status = (
            recommendation.rollup.status if recommendation.rollup else recommendation.status
        )
    return recommendations


def status_counts(counts):
    """Return [(status, count)] in the statuses' order, for the badges and the legend."""
    return [(status, counts.get(status, 0)) for status in Status.values]


def redirect_renumbered(view, document, code):
    """Send a link to a code a new version of the document gave up to the ask that had it;
    temporary (302), since a later version may give the code to another ask."""
    renumbered = Recommendation.objects.public().renumbered_from(document, code)
    if renumbered is None:
        raise Http404("No such recommendation.")
    return redirect(view, document=document, code=renumbered.code)


@public_page
def recommendation(request, document, code):
    recommendation = (
        Recommendation.objects.public()
        .select_related("document__publisher", "parent")
        .filter(document__code=document, code=code)
        .first()
    )
    if recommendation is None:
        return redirect_renumbered("public:recommendation", document, code)
    parent = recommendation.parent if recommendation.parent_id else None
    if parent is not None and not parent.is_public:
        parent = None
    ownerships = list(recommendation.ownerships.select_related("agency"))
    children = list(
        Recommendation.objects.public().filter(parent=recommendation).order_by("position")
    )
    family = [recommendation, *children]
    attach_rollups(family, rollups_of(family, within=Recommendation.objects.public()))
    # The evidence shown is public evidence (tracker.models.EvidenceQuerySet.public), as in
    # the feeds, search, the API and the kept copies' pages.
    changes = list(
        StatusChange.objects.filter(recommendation=recommendation)
        .latest_first()
        .prefetch_related(
            Prefetch("evidence", queryset=Evidence.objects.public().order_by("title"))
        )
    )
    cited = {evidence.pk for change in changes for evidence in change.evidence.all()}
    other_evidence = list(recommendation.evidence.public().exclude(pk__in=cited))
    copies = public.kept_copies(
        [evidence for change in changes for evidence in change.evidence.all()] + other_evidence
    )
    # Changes dated before the document's publication are its background, shown apart.
    predates = recommendation.document.predates
    background = [change for change in changes if predates(change.effective_on)]
    response = render(
        request,
        "tracker/recommendation.html",
        {
            "document": recommendation.document,
            "recommendation": recommendation,
            "parent": parent,
            "leads": [o for o in ownerships if o.role == Ownership.Role.LEAD],
            "supporting": [o for o in ownerships if o.role != Ownership.Role.LEAD],
            "children": children,
            "themes": list(recommendation.themes.all()),
            "changes": [change for change in changes if not predates(change.effective_on)],
            "background": background,
            "other_evidence": other_evidence,
            "copies": copies,
        },
    )
    return with_last_modified(response)


def family_ownerships(ownerships):
    """Return one ownership per recommendation, in order, a lead's first: what an agency
    and its sub-agencies own, each recommendation listed once."""
    chosen = {}
    for ownership in ownerships:
        held = chosen.get(ownership.recommendation_id)
        if held is None or (
            ownership.role == Ownership.Role.LEAD and held.role != Ownership.Role.LEAD
        ):
            chosen[ownership.recommendation_id] = ownership
    return list(chosen.values())


@public_page
def agency(request, slug):
    agency = get_object_or_404(Agency.objects.select_related("parent"), slug=slug)
    family = agency.family_ids()
    ownerships = family_ownerships(
        Ownership.objects.public()
        .filter(agency__in=family)
        .select_related("recommendation__document", "agency")
        .order_by("recommendation__document__code", "recommendation__position", "pk")
    )
    owned = [ownership.recommendation for ownership in ownerships]
    attach_rollups(owned, rollups_of(owned, within=Recommendation.objects.public()))
    summary = progress_by_agency([agency.pk], published_only=True)[agency.pk]
    chart, chart_rows = None, []
    if ownerships:
        published = [o.recommendation.document.published_on for o in ownerships]
        changed = [o.recommendation.status_changed_on for o in ownerships]
        start = min(filter(None, published), default=None) or min(
            filter(None, changed), default=timezone.localdate()
        )
        chart, chart_rows = chart_of(
            scope_key(staff=False, agency=agency.pk),
            start=start,
            chart_id="progress-chart",
            title=_("Progress of %(agency)s over time") % {"agency": agency.display_name},
        )
    by_status = [
        {
            "status": status,
            "ownerships": [o for o in ownerships if o.recommendation.shown_status == status],
        }
        for status in Status.values
    ]
    response = render(
        request,
        "tracker/agency.html",
        {
            "agency": agency,
            "sub_agencies": list(agency.children.order_by("name")),
            "summary": summary,
            "statuses": status_counts(summary.counts),
            "by_status": [group for group in by_status if group["ownerships"]],
            "chart": chart,
            "chart_rows": chart_rows,
            "status_names": Status.values,
            "lead_count": sum(o.role == Ownership.Role.LEAD for o in ownerships),
            "supporting_count": sum(o.role != Ownership.Role.LEAD for o in ownerships),
        },
    )
    return with_last_modified(response)


@public_page
def agencies(request):
    agencies = list(public.public_agencies().order_by("kind", "name"))
    summaries = progress_by_agency([agency.pk for agency in agencies], published_only=True)
    for agency in agencies:
        agency.progress_summary = summaries[agency.pk]
    kinds = [
        {"kind": kind, "agencies": [agency for agency in agencies if agency.kind == kind]}
        for kind in Agency.Kind.values
    ]
    response = render(
        request,
        "tracker/agencies.html",
        {"kinds": [group for group in kinds if group["agencies"]]},
    )
    return with_last_modified(response)


def moved_page(request, *, user):
    """Return the context of a page of "What moved": the filter form and, when it is valid,
    the page of status changes it selects and the query string of its other pages. The
    public page and the admin's view share it (`user` None: the public's view)."""
    form = ChangesForm(request.GET, user=user)
    context = {"form": form, "page": None}
    if form.is_valid():
        listed = changes.status_changes_between(
            form.cleaned_data["from"], form.cleaned_data["to"], user=user, **form.filters()
        )
        page = Paginator(listed, CHANGES_PER_PAGE).get_page(request.GET.get("page"))
        query = request.GET.copy()
        query.pop("page", None)
        context.update(
            page=page,
            start=form.cleaned_data["from"],
            end=form.cleaned_data["to"],
            page_query=query.urlencode(),
        )
    return context


@public_page
def moved(request):
    """What moved: the public status changes in a range of days (the last 30 by default)."""
    return render(request, "tracker/moved.html", moved_page(request, user=None))


@public_page
def search(request):
    query = request.GET.get("q", "")
    words = public.search_words(query)
    recommendations, evidence = [], []
    if words:
        recommendations = list(public.search_recommendations(words))
        evidence = public.attach_recommendations(public.search_evidence(words))
    return render(
        request,
        "tracker/search.html",
        {
            "query": " ".join(words),
            "searched": bool(words),
            "recommendations": recommendations,
            "evidence": evidence,
            "limit": public.SEARCH_LIMIT,
        },
    )


@public_page
def source_version(request, pk):
    version = get_object_or_404(SourceVersion.objects.select_related("source"), pk=pk)
    citing = public.attach_recommendations(public.evidence_citing(version))
    if not citing:
        raise Http404("No public evidence cites this version.")
    response = render(
        request,
        "tracker/source_version.html",
        {"version": version, "citing": citing},
    )
    return with_last_modified(response, version.fetched_at)


# The language switcher posts here without a CSRF token: choosing the display language is
# harmless, and a token differing on each response would defeat ETags and shared caches.
set_language = csrf_exempt(django_set_language)


# Subscriptions
# Pages with a form or a personal link: never cached, unlike the public pages above.


def bad_subscription_link(request, error):
    return render(
        request, "tracker/subscription_link_error.html", {"expired": error.expired}, status=400
    )


@never_cache
def subscribe(request):
    """The sign-up form. Its answer is the same for a new, pending or confirmed address,
    whether a mail went out or not (digests.subscribe rations them): it tells nothing
    about whether an address is subscribed."""
    form = SubscribeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        spent, retry_after = signups_spent(request)
        if spent:
            form.add_error(
                None,
                _(
                    "Too many sign-ups have come from your connection in the last hour. "
                    "Please try again later."
                ),
            )
            response = render(request, "tracker/subscribe.html", {"form": form}, status=429)
            response["Retry-After"] = str(math.ceil(retry_after))
            return response
        try:
            digests.subscribe(
                email=form.cleaned_data["email"],
                language=translation.get_language(),
                frequency=form.cleaned_data["frequency"],
                documents=form.cleaned_data["documents"],
                agencies=form.cleaned_data["agencies"],
            )
        except (smtplib.SMTPException, OSError):  # the sign-up is kept: trying again resends
            logger.exception("could not send a confirmation email")
            form.add_error(
                None,
                _(
                    "We could not send the confirmation email just now. "
                    "Please try again in a few minutes."
                ),
            )
        else:
            return redirect("public:subscribe_sent")
    return render(request, "tracker/subscribe.html", {"form": form})


def signups_spent(request):
    """Count this sign-up against its client's hourly allowance (TRACKER_SIGNUPS_PER_HOUR);
    return (whether it is over the allowance, seconds until the allowance renews)."""
    allowance = settings.TRACKER_SIGNUPS_PER_HOUR
    if allowance <= 0:
        return False, 0
    count, renews_in = count_in_window(f"signups:{client_ip(request)}", seconds=3600)
    return count > allowance, renews_in


@never_cache
@require_safe
def subscribe_sent(request):
    return render(request, "tracker/subscribe_sent.html")


@never_cache
@require_safe
def confirm(request, token):
    try:
        subscription = digests.subscription_from_token(token, purpose="confirm")
    except digests.BadLink as error:
        return bad_subscription_link(request, error)
    digests.confirm(subscription)
    links = digests.subscription_links(subscription)
    if subscription.unsubscribed_at is not None:  # an old link, after unsubscribing
        context = {"subscription": subscription, "preferences_path": links["preferences_url"]}
        return render(request, "tracker/unsubscribe.html", context)
    context = {"subscription": subscription, **links}
    return render(request, "tracker/subscription_confirmed.html", context)


@never_cache
def preferences(request, token):
    try:
        subscription = digests.subscription_from_token(token, purpose="manage")
    except digests.BadLink as error:
        return bad_subscription_link(request, error)
    form = PreferencesForm(request.POST or None, instance=subscription)
    saved = False
    if request.method == "POST" and form.is_valid():
        form.save()
        saved = True
    context = {
        "subscription": subscription,
        "form": form,
        "saved": saved,
        "unsubscribe_path": reverse("public:unsubscribe", args=[token]),
    }
    return render(request, "tracker/preferences.html", context)


# Mail clients unsubscribe in one click by POSTing here (RFC 8058, List-Unsubscribe-Post),
# without a CSRF token; the signed link is the proof that the mail was received.
@never_cache
@csrf_exempt
def unsubscribe(request, token):
    try:
        subscription = digests.subscription_from_token(token, purpose="manage")
    except digests.BadLink as error:
        return bad_subscription_link(request, error)
    if request.method == "POST":
        digests.unsubscribe(subscription)
    context = {
        "subscription": subscription,
        "preferences_path": reverse("public:preferences", args=[token]),
    }
    return render(request, "tracker/unsubscribe.html", context)


# The files a progress report comes as, beside its page: (content type, extension).
REPORT_FILES = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "pdf": ("application/pdf", "pdf"),
}


@require_safe
@cache_control(public=True, max_age=PUBLIC_MAX_AGE)
@vary_on_headers("Accept-Language", "Cookie")
def progress_report(request, fmt="html"):
    """A progress report to print or hand over: the page (print stylesheet), its PDF, or the
    same lines as CSV or XLSX; the choices go in the query string, so a report is a link."""
    form = ReportForm(request.GET)
    if not form.is_valid():
        if fmt != "html":
            return HttpResponseBadRequest(
                " ".join(str(error) for errors in form.errors.values() for error in errors),
                content_type="text/plain; charset=utf-8",
            )
        return render(request, "tracker/report.html", {"form": form}, status=400)
    data = form.cleaned_data
    report = reports.progress_report(
        document=data["document"],
        agency=data["agency"],
        theme=data["theme"],
        as_of=data["as_of"],
        period_start=data["since"],
    )
    site_url = request.build_absolute_uri("/").rstrip("/")
    query = request.GET.urlencode()
    context = {"form": form, "report": report, "query": query, "printing": fmt == "pdf"}
    if fmt == "html":
        return render(request, "tracker/report.html", context)
    content_type, extension = REPORT_FILES[fmt]
    if fmt == "csv":
        body = reports.report_csv(report, site_url=site_url)
    elif fmt == "xlsx":
        body = reports.report_xlsx(report, site_url=site_url)
    else:
        body = reports.report_pdf(render_to_string("tracker/report.html", context, request))
    response = HttpResponse(body, content_type=content_type)
    scope = (
        data["document"].code
        if data["document"]
        else (
            data["agency"].slug
            if data["agency"]
            else data["theme"].slug
            if data["theme"]
            else "all"
        )
    )
    filename = f"progress-{scope}-{report.as_of.isoformat()}.{extension}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# What each status means on this site: the methodology page's definitions.
STATUS_MEANINGS = {
    Status.NOT_ASSESSED: gettext_lazy(
        "Staff have not looked into it yet: no status has been recorded. It counts as nothing "
        "done, and the pages say how many are still in this state."
    ),
    Status.NOT_STARTED: gettext_lazy(
        "No step toward the recommendation is on record: no announcement, funding, rule or "
        "action that staff could cite."
    ),
    Status.IN_PROGRESS: gettext_lazy(
        "The body it is addressed to has taken a first public step (an announcement, a "
        "proposal, a bill introduced, money requested) but nothing is in effect yet."
    ),
    Status.PARTIAL: gettext_lazy(
        "Part of what was asked is in effect (some of the measures, some of the people or "
        "places, or for a limited time)."
    ),
    Status.IMPLEMENTED: gettext_lazy("What was asked is in effect, as the evidence shows."),
    Status.STALLED: gettext_lazy(
        "A step was taken and then stopped: a bill that died, a program paused, a proposal "
        "withdrawn."
    ),
    Status.REVERSED: gettext_lazy(
        "What had been done was undone, or a measure against the recommendation took effect."
    ),
}


@public_page
def methodology(request):
    """How statuses are decided and how progress is counted, in words a visitor can check."""
    statuses = [
        {
            "code": status,
            "meaning": STATUS_MEANINGS.get(status, ""),
            "weight": round(STATUS_WEIGHTS[status] * 100),
        }
        for status in Status.values
    ]
    return render(request, "tracker/methodology.html", {"statuses": statuses})
