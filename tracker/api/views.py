"""The REST API: thin viewsets over the domain; visibility rules live on the models."""

import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Min, Prefetch, Q
from django.http import HttpResponse
from django.utils import timezone, translation
from django.utils.functional import cached_property
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import filters, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from ..caching import cached, cached_rows
from ..changes import with_previous_status
from ..importing import export_csv
from ..ledger import LEDGER_INTERVALS, ledger_series, scope_key
from ..models import (
    Agency,
    ChangeAlert,
    Document,
    Evidence,
    Ownership,
    Recommendation,
    Source,
    SourceVersion,
    StatusChange,
    sees_drafts,
)
from ..progress import (
    agency_scorecards,
    attach_progress,
    implementation_curve,
    progress_by_agency,
    progress_by_document,
    progress_series,
    rollups_of_tree,
)
from ..triage import AlreadyHandled, review_alert
from ..webhooks import announce_evidence
from . import serializers as api
from .filters import (
    EvidenceFilter,
    RecommendationFilter,
    StatusChangeFilter,
    filter_by_agency,
    filter_by_theme,
    named_agencies,
    named_themes,
)
from .pagination import KeysFirstPagination
from .permissions import (
    CanRecordStatus,
    CanReviewAlerts,
    StaffWithViewPermission,
    StaffWritesWithModelPermissions,
)

# The longest progress series one request may ask for (ten years of days).
MAX_PERIODS = 3660
# The fewest days in each interval, to bound a series' length before building it.
DAYS_PER_PERIOD = {"day": 1, "week": 7, "month": 28, "year": 365}


# Up to this many rows read their own subtrees for their roll-ups, not their documents' trees.
FEW_ROWS = 5
# List parameters that never make its rows or their order depend on statuses.
STATUS_BLIND_PARAMETERS = {"page", "page_size", "lang", "format", "ordering", "search"}
STATUS_BLIND_ORDERINGS = {"code", "position"}


def is_status_blind(parameters):
    """Whether no recorded status can move a row into, out of or around the list asked for
    by `parameters`: no filter (by status, date of change…), no ordering by status or date."""
    ordering = parameters.get("ordering")
    return parameters.keys() <= STATUS_BLIND_PARAMETERS and (
        not ordering
        or all(term.strip().lstrip("-") in STATUS_BLIND_ORDERINGS for term in ordering.split(","))
    )


def cache_key(request, *parts):
    """What a cached read depends on: the full URL (query and host, for the page links), who
    may see drafts, the response format and the language."""
    return (
        *parts,
        request.build_absolute_uri(),
        sees_drafts(request.user),
        request.accepted_renderer.format,
        translation.get_language(),
    )


def count_key(request, *parts):
    """What a list's count depends on: its URL but the page, and who may see drafts."""
    query = request.GET.copy()
    for name in ("page", "page_size", "lang"):
        query.pop(name, None)
    return (*parts, request.path, query.urlencode(), sees_drafts(request.user))


class CachedReadsMixin:
    """Serve lists and details from the cache until the tracked data next changes; the
    permission and throttling checks still run on every request."""

    def last_modified_of(self, instance):
        return None

    def list(self, request, *args, **kwargs):
        def read():
            return super(CachedReadsMixin, self).list(request, *args, **kwargs).data

        return Response(cached(cache_key(request, self.basename, "list"), read))

    def retrieve(self, request, *args, **kwargs):
        def read():
            instance = self.get_object()
            modified = self.last_modified_of(instance)
            return self.get_serializer(instance).data, modified and http_date(modified.timestamp())

        data, last_modified = cached(cache_key(request, self.basename, "detail"), read)
        response = Response(data)
        if last_modified:
            # ConditionalGetMiddleware answers If-Modified-Since from it.
            response["Last-Modified"] = last_modified
        return response


class ProgressSummaryMixin:
    """Attach each listed or retrieved object's counts by status and progress, per page."""

    summarise = None

    def summaries_for(self, objects):
        published_only = not sees_drafts(self.request.user)
        return attach_progress(objects, self.summarise, published_only=published_only)

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return self.summaries_for(list(page if page is not None else queryset))

    def get_object(self):
        return self.summaries_for([super().get_object()])[0]


class DocumentViewSet(CachedReadsMixin, ProgressSummaryMixin, viewsets.ModelViewSet):
    """Tracked documents, with counts of their recommendations by status and % progress."""

    serializer_class = api.DocumentSerializer
    permission_classes = [StaffWritesWithModelPermissions]
    summarise = staticmethod(progress_by_document)
    filter_backends = [filters.SearchFilter, filters.OrderingFilter]
    search_fields = ["title_en", "title_es", "code", "author", "summary_en", "summary_es"]
    ordering_fields = ["published_on", "code", "title"]
    ordering = ["-published_on", "pk"]

    def get_queryset(self):
        return Document.objects.visible_to(self.request.user).select_related("publisher")


class AgencyViewSet(CachedReadsMixin, ProgressSummaryMixin, viewsets.ModelViewSet):
    """Agencies (US agencies and partners), with counts of what they own by status."""

    serializer_class = api.AgencySerializer
    permission_classes = [StaffWritesWithModelPermissions]
    summarise = staticmethod(progress_by_agency)
    filter_backends = [filters.SearchFilter, filters.OrderingFilter]
    search_fields = ["name_en", "name_es", "acronym", "aliases"]
    ordering_fields = ["name", "acronym"]
    ordering = ["name", "pk"]

    def get_queryset(self):
        return Agency.objects.all()

    @extend_schema(responses=api.ScorecardSerializer)
    @action(detail=True, filter_backends=[], pagination_class=None)
    def scorecard(self, request, pk=None):
        """Counts by status as lead and as supporting, progress, and the median days from
        publication to implementation of what the agency leads."""
        agency = super().get_object()
        card = agency_scorecards([agency], published_only=not sees_drafts(request.user))
        return Response(api.ScorecardSerializer(card[agency.pk]).data)

    @extend_schema(responses=api.ScorecardSerializer(many=True))
    @action(detail=False, filter_backends=[], pagination_class=None)
    def scorecards(self, request):
        """Every agency that owns a recommendation, itself or through a sub-agency, with its
        scorecard."""
        visible = Recommendation.objects.visible_to(request.user)
        agencies = list(Agency.objects.owning(Ownership.objects.filter(recommendation__in=visible)))
        cards = agency_scorecards(agencies, published_only=not sees_drafts(request.user))
        ranked = sorted(cards.values(), key=lambda card: (-card["progress"], card["agency"].name))
        return Response(api.ScorecardSerializer(ranked, many=True).data)


class RecommendationViewSet(CachedReadsMixin, viewsets.ModelViewSet):
    """Recommendations with their owners, status and latest change; drafts for staff only."""

    serializer_class = api.RecommendationSerializer
    permission_classes = [StaffWritesWithModelPermissions]
    filterset_class = RecommendationFilter
    pagination_class = KeysFirstPagination
    # Words of either language find a recommendation (its English or Spanish version).
    search_fields = ["code", "title_en", "title_es", "text_en", "text_es", "note_en", "note_es"]
    ordering_fields = ["code", "updated_at", "status", "status_changed_on", "position"]
    ordering = ["document_id", "position", "code", "pk"]

    def get_queryset(self):
        # Owners and themes come per page or object (with_owners_and_themes), as values.
        return self.visible.select_related("document", "parent")

    @cached_property
    def visible(self):
        """What the asker may see, built once for the request (a view serves one)."""
        return Recommendation.objects.visible_to(self.request.user)

    @cached_property
    def visible_tree(self):
        """What the asker may see, in any order (no join to the documents to sort by), for
        reading (id, parent id, status) rows: no translated text read, so modeltranslation's
        fallbacks are skipped (twice as fast)."""
        return self.visible.order_by().rewrite(False)

    def last_modified_of(self, recommendation):
        return recommendation.updated_at

    def with_rollups(self, recommendations, *, childless=frozenset()):
        """Give each listed or retrieved recommendation its sub-recommendations' roll-up over
        what the asker may see, and whether its parent is hidden from the asker (a draft's
        id is not public). A few rows (built again after a recorded status) read their own
        subtrees; more read their documents' trees, kept until the data next changes: the
        other pages of those documents read them too."""
        staff = sees_drafts(self.request.user)
        if len(recommendations) <= FEW_ROWS:
            rows, visible_parents = self.subtrees_of(recommendations, childless)
            rollups = rollups_of_tree(rows)
        else:
            documents = sorted({recommendation.document_id for recommendation in recommendations})
            rollups, visible_parents = cached(
                ("recommendation-trees", staff, *documents), lambda: self.trees_of(documents)
            )
        for recommendation in recommendations:
            recommendation.rollup = rollups.get(recommendation.pk)
            parent_id = recommendation.parent_id
            recommendation.parent_hidden = (
                not staff and parent_id is not None and parent_id not in visible_parents
            )
        return recommendations

    def trees_of(self, documents):
        """Return ({id: Rollup}, {visible id}) over what the asker may see in `documents`:
        one query."""
        rows = list(
            self.visible_tree.filter(document_id__in=documents).values_list(
                "pk", "parent_id", "status"
            )
        )
        return rollups_of_tree(rows), {pk for pk, _parent, _status in rows}

    def subtrees_of(self, recommendations, childless=frozenset()):
        """Return the (id, parent id, status) of `recommendations` and of what the asker may
        see below them, and which of their parents the asker may see: one query per level
        below the rows, whatever the size of their documents. Those known to be `childless`
        (to the asker) are not looked under."""
        rows = {r.pk: (r.pk, r.parent_id, r.status) for r in recommendations}
        outside_parents = {r.parent_id for r in recommendations} - rows.keys() - {None}
        visible_parents = set(rows)
        parents = [pk for pk in rows if pk not in childless]
        level = Q(parent_id__in=parents) | Q(pk__in=outside_parents)
        while parents or outside_parents:
            below = []
            for row in self.visible_tree.filter(level).values_list("pk", "parent_id", "status"):
                pk, parent_id, _status = row
                if pk in outside_parents:
                    visible_parents.add(pk)
                # A parent outside the page may also sit below one of its rows.
                if parent_id in rows and pk not in rows:
                    rows[pk] = row
                    below.append(pk)
            parents, outside_parents = [pk for pk in below if pk not in childless], ()
            level = Q(parent_id__in=parents)
        return list(rows.values()), visible_parents

    def with_owners_and_themes(self, recommendations):
        """Give each recommendation the owners and themes the serializer shows: two queries
        (none for no recommendation)."""
        if not recommendations:
            return recommendations
        owners, themes = api.owners_and_themes([r.pk for r in recommendations])
        for recommendation in recommendations:
            recommendation.listed_owners = owners[recommendation.pk]
            recommendation.listed_themes = themes[recommendation.pk]
        return recommendations

    def with_documents(self, recommendations):
        """Give each recommendation its document (status_since reads it), one copy for all of
        a page's rows, kept until a write other than a status: the other pages share them."""
        ids = sorted({recommendation.document_id for recommendation in recommendations})
        documents = cached(
            ("documents", *ids), lambda: Document.objects.in_bulk(ids), through_status_writes=True
        )
        for recommendation in recommendations:
            recommendation.document = documents[recommendation.document_id]
        return recommendations

    def list(self, request, *args, **kwargs):
        """A page's ids come from the database; its rows are kept one by one (a status
        recorded makes only its recommendation's and ancestors' rows stale)."""

        def read():
            page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
            return self.get_paginated_response(self.rows_of(page)).data

        return Response(cached(cache_key(request, self.basename, "list"), read))

    def paginate_queryset(self, queryset):
        # Every page of one list has the same count.
        self.paginator.count_key = count_key(self.request, self.basename, "count")
        self.paginator.status_blind = is_status_blind(self.request.query_params)
        self.paginator.keep_ids = True
        # A page joins neither parents (with_rollups says whether one may be named) nor
        # documents (with_documents gives the rows theirs).
        return super().paginate_queryset(queryset.select_related(None))

    def rows_of(self, page):
        """The rows of a page (its ids as kept, or its recommendations as read) as the
        serializer shows them to this asker."""
        read = {item.pk: item for item in page if isinstance(item, Recommendation)}
        audience = (
            "recommendation-row",
            sees_drafts(self.request.user),
            translation.get_language(),
            timezone.get_current_timezone_name(),
        )
        return cached_rows(
            [getattr(item, "pk", item) for item in page],
            audience,
            lambda ids, kept: self.build_rows(ids, kept, read),
        )

    def build_rows(self, ids, kept, read):
        """Return {id: row} for those of `ids` the asker may see, from the recommendations
        `read` already, else from a query. Rows `kept` under the current structure say what
        no recorded status changes: owners and themes, and who has no sub-recommendation."""
        if read:
            rows = self.with_documents([read[pk] for pk in ids])
        elif len(ids) <= FEW_ROWS:  # their documents joined: no cache round trip for them
            queryset = self.get_queryset().select_related(None).select_related("document")
            rows = list(queryset.filter(pk__in=ids))
        else:
            queryset = self.get_queryset().select_related(None).filter(pk__in=ids)
            rows = self.with_documents(list(queryset))
        self.with_owners_and_themes([row for row in rows if row.pk not in kept])
        for row in rows:
            if row.pk in kept:
                row.listed_owners = kept[row.pk]["owners"]
                row.listed_themes = kept[row.pk]["themes"]
        childless = {pk for pk, row in kept.items() if row["rollup"] is None}
        rows = self.with_rollups(rows, childless=childless)
        return {row["id"]: row for row in self.get_serializer(rows, many=True).data}

    def get_object(self):
        return self.with_rollups(self.with_owners_and_themes([super().get_object()]))[0]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=False, pagination_class=None)
    def export(self, request):
        """The filtered recommendations as CSV, in the format the importer reads."""
        recommendations = self.filter_queryset(self.get_queryset())
        csv_text = export_csv(recommendations, drafts_visible=sees_drafts(request.user))
        response = HttpResponse(csv_text, content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="recommendations.csv"'
        return response

    @extend_schema(request=api.RecordStatusSerializer, responses={201: api.StatusChangeSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CanRecordStatus])
    def record_status(self, request, pk=None):
        """Append a status change; it needs evidence or a rationale (history is append-only)."""
        recommendation = self.get_object()
        entry = api.RecordStatusSerializer(data=request.data)
        entry.is_valid(raise_exception=True)
        try:
            change = recommendation.record_status(**entry.validated_data, by=request.user)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"detail": error.messages}) from None
        change = with_previous_status(StatusChange.objects.filter(pk=change.pk)).get()
        return Response(api.StatusChangeSerializer(change).data, status=status.HTTP_201_CREATED)


class StatusChangeViewSet(CachedReadsMixin, viewsets.ReadOnlyModelViewSet):
    """The append-only status history; new entries go through a recommendation's
    record_status action."""

    serializer_class = api.StatusChangeSerializer
    filterset_class = StatusChangeFilter
    ordering_fields = ["effective_on", "recorded_at"]
    ordering = ["-effective_on", "-recorded_at", "-pk"]

    def get_queryset(self):
        user = self.request.user
        return with_previous_status(StatusChange.objects.visible_to(user)).prefetch_related(
            Prefetch("evidence", queryset=Evidence.objects.visible_to(user).only("pk"))
        )


class EvidenceViewSet(CachedReadsMixin, viewsets.ModelViewSet):
    """Evidence behind status changes; the public sees evidence bearing on published work
    only (linked to it or cited by its history)."""

    serializer_class = api.EvidenceSerializer
    permission_classes = [StaffWritesWithModelPermissions]
    filterset_class = EvidenceFilter
    search_fields = ["title_en", "title_es", "outlet", "excerpt_en", "excerpt_es"]
    ordering_fields = ["published_on", "title"]
    ordering = ["-published_on", "pk"]

    def get_queryset(self):
        user = self.request.user
        visible = Recommendation.objects.visible_to(user).only("pk")
        return Evidence.objects.visible_to(user).prefetch_related(
            Prefetch("recommendations", queryset=visible)
        )

    def perform_create(self, serializer):
        announce_evidence(serializer.save())


class SourceViewSet(viewsets.ModelViewSet):
    """Watched sources (staff only; adding and editing take the model's permissions)."""

    serializer_class = api.SourceSerializer
    permission_classes = [StaffWithViewPermission]
    search_fields = ["url", "title"]
    ordering = ["url", "pk"]
    queryset = Source.objects.prefetch_related("recommendations", "evidence")


class SourceVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Kept copies of sources (staff only)."""

    serializer_class = api.SourceVersionSerializer
    permission_classes = [StaffWithViewPermission]
    filterset_fields = ["source"]
    ordering = ["-fetched_at", "pk"]
    queryset = SourceVersion.objects.all()


class ChangeAlertViewSet(viewsets.ReadOnlyModelViewSet):
    """Changes seen on sources, unreviewed first (staff only)."""

    serializer_class = api.ChangeAlertSerializer
    permission_classes = [StaffWithViewPermission]
    filterset_fields = ["source"]
    queryset = ChangeAlert.objects.inbox_order()

    @extend_schema(request=None, responses={200: api.ChangeAlertSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CanReviewAlerts])
    def review(self, request, pk=None):
        """Mark the alert reviewed (triage without turning it into evidence); 409 if it
        already was."""
        alert = self.get_object()
        try:
            review_alert(alert, by=request.user)
        except AlreadyHandled as refusal:
            return Response({"detail": refusal.message}, status=status.HTTP_409_CONFLICT)
        alert.refresh_from_db()
        return Response(api.ChangeAlertSerializer(alert).data)


class ProgressView(APIView):
    """Progress over time: at the end of each period, the count in each status and the
    weighted progress, replayed exactly from the status history."""

    @extend_schema(
        parameters=[
            OpenApiParameter("interval", enum=["day", "week", "month", "year"], default="month"),
            OpenApiParameter("from", OpenApiTypes.DATE, description="Default: first publication"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Default: today"),
            OpenApiParameter(
                "document", OpenApiTypes.STR, description="Document, by code (WRC-2024) or id"
            ),
            OpenApiParameter("agency", OpenApiTypes.STR, description="Id or acronym"),
            OpenApiParameter("theme", OpenApiTypes.STR, description="Slug or name"),
        ],
        responses=api.ProgressSeriesSerializer,
    )
    def get(self, request):
        query = api.ProgressQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        recommendations = filtered_recommendations(request, params)
        end = params.get("to") or timezone.localdate()
        start = params.get("from") or self.first_publication(recommendations, end)
        # Counted from the days before any list is built: the range may be absurd.
        if (end - start).days // DAYS_PER_PERIOD[params["interval"]] > MAX_PERIODS:
            raise serializers.ValidationError(
                {"interval": f"at most {MAX_PERIODS} periods; choose a longer interval"}
            )

        def read():
            scope = ledger_scope(request, params)
            if scope is not None:
                series = ledger_series(scope, interval=params["interval"], start=start, end=end)
            else:  # days, weeks, or filters combined: replayed from the history
                series = progress_series(
                    recommendations,
                    interval=params["interval"],
                    start=start,
                    end=end,
                    within=Recommendation.objects.visible_to(request.user),
                )
            return api.progress_series_data(series)

        # Keyed by the resolved dates: a series "to today" changes at midnight.
        return Response(cached(cache_key(request, "progress", start, end), read))

    @staticmethod
    def first_publication(recommendations, end):
        first = recommendations.aggregate(first=Min("document__published_on"))["first"]
        return min(first or end - datetime.timedelta(days=365), end)


def filtered_recommendations(request, params):
    """The recommendations the user may see, narrowed by document, agency and theme."""
    recommendations = Recommendation.objects.visible_to(request.user)
    document = params.get("document")
    if isinstance(document, int):
        recommendations = recommendations.filter(document_id=document)
    elif document is not None:
        recommendations = recommendations.filter(document__code=document)
    if "agency" in params:
        recommendations = filter_by_agency(recommendations, params["agency"])
    if "theme" in params:
        recommendations = filter_by_theme(recommendations, params["theme"])
    return recommendations


def ledger_scope(request, params):
    """The progress ledger's scope for the series `params` ask for (as filtered_recommendations
    filters), or None when the ledger does not keep it: days and weeks, filters combined,
    or a name that matches no single document, agency or theme."""
    if params["interval"] not in LEDGER_INTERVALS:
        return None
    named = {}
    document = params.get("document")
    if document is not None:
        named["document"] = (
            document
            if isinstance(document, int)
            else single_id(Document.objects.filter(code=document))
        )
    if "agency" in params:
        named["agency"] = single_id(named_agencies(params["agency"]))
    if "theme" in params:
        named["theme"] = single_id(named_themes(params["theme"]))
    if None in named.values():
        return None
    return scope_key(staff=sees_drafts(request.user), **named)


def single_id(queryset):
    ids = list(queryset.values_list("pk", flat=True)[:2])
    return ids[0] if len(ids) == 1 else None


class ImplementationCurveView(APIView):
    """The share of recommendations implemented N months after their document's
    publication, for comparing documents of different ages."""

    @extend_schema(parameters=[api.CurveQuerySerializer], responses=api.CurveSerializer)
    def get(self, request):
        query = api.CurveQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        recommendations = filtered_recommendations(request, query.validated_data)

        def read():
            curve = implementation_curve(recommendations, months=query.validated_data["months"])
            return api.CurveSerializer({"curve": curve}).data

        return Response(cached(cache_key(request, "curve", timezone.localdate()), read))
