import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q
from django_filters.rest_framework import DjangoFilterBackend

from ..models import Agency, Document, Evidence, Ownership, Recommendation, StatusChange, Theme


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, but a request naming none of the FilterSet's parameters gets
    the list whole without building the FilterSet: its form, and the querysets its choices
    read, cost more than a cached page. A filter whose parameter is absent never filters.

    A parameter counts as named when it starts with a filter's name, as a range filter's
    `<name>_after` does: naming one too many only builds the FilterSet."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and not any(
            parameter.startswith(name)
            for parameter in request.query_params
            for name in filterset_class.base_filters
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)


def is_id(value):
    # ASCII digits only: "³".isdigit() is true, yet no id.
    return value.isascii() and value.isdigit()


class DocumentField(forms.ModelChoiceField):
    """A document by its code (WRC-2024) or its numeric id; an unknown one, or one the
    client may not see, is refused alike ("Select a valid choice")."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        value = str(value)
        lookup = {"pk": value} if is_id(value) else {"code": value}
        try:
            return self.queryset.get(**lookup)
        except self.queryset.model.DoesNotExist:
            raise forms.ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice"
            ) from None


class DocumentFilter(django_filters.ModelChoiceFilter):
    field_class = DocumentField


def named_agencies(value):
    """Return the agencies named by `value` (id, acronym or slug)."""
    value = str(value)
    lookup = Q(pk=value) if is_id(value) else Q(acronym__iexact=value) | Q(slug=value)
    return Agency.objects.filter(lookup)


def agency_and_descendants(value):
    """Return the agency named by `value` (id, acronym or slug) and all agencies under it."""
    return named_agencies(value).with_descendants()


def named_themes(value):
    """Return the themes named by `value` (slug or name), as filter_by_theme matches them."""
    return Theme.objects.filter(Q(slug=value) | Q(name__iexact=value))


def visible_recommendations(request):
    """The recommendations a filter may name: a draft's id is as unknown as a missing one."""
    return Recommendation.objects.visible_to(getattr(request, "user", None))


def visible_documents(request):
    """The documents a filter may name (and the browsable API lists): a drafts-only
    document's id is as unknown as a missing one."""
    return Document.objects.visible_to(getattr(request, "user", None))


def filter_by_agency(queryset, value, *, role=None):
    """The recommendations an agency (or one under it) owns, in `role` if given."""
    ownerships = Ownership.objects.filter(agency__in=agency_and_descendants(value))
    if role:
        ownerships = ownerships.filter(role=role)
    return queryset.filter(pk__in=ownerships.values("recommendation"))


def filter_by_theme(queryset, value, prefix=""):
    return queryset.filter(
        Q(**{f"{prefix}themes__slug": value}) | Q(**{f"{prefix}themes__name__iexact": value})
    ).distinct()


class RecommendationFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Recommendation.Status.choices)
    document = DocumentFilter(
        queryset=visible_documents, label="Document, by code (WRC-2024) or id"
    )
    parent = django_filters.ModelChoiceFilter(queryset=visible_recommendations)
    agency = django_filters.CharFilter(
        method="filter_agency",
        label="Owner agency, by id, acronym or slug, with its sub-agencies",
    )
    role = django_filters.ChoiceFilter(
        choices=Ownership.Role.choices, method="filter_role", label="Role of the agency filter"
    )
    theme = django_filters.CharFilter(method="filter_theme", label="Theme, by slug or name")
    changed_since = django_filters.IsoDateTimeFilter(
        method="filter_changed_since",
        label="A status change was recorded at or after this moment (ISO 8601), whatever "
        "date it took effect; edits of the text, owners or themes do not count (see "
        "updated_since).",
    )
    updated_since = django_filters.IsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        label="Saved at or after this moment (ISO 8601): any edit, a re-import of its "
        "document or a status change.",
    )
    status_changed_after = django_filters.DateFilter(
        field_name="status_changed_on",
        lookup_expr="gte",
        label="The current status took effect on or after this day (YYYY-MM-DD, included): "
        "the status moved then or later. Recommendations with no status change never match.",
    )
    status_changed_before = django_filters.DateFilter(
        field_name="status_changed_on",
        lookup_expr="lte",
        label="The current status took effect on or before this day (YYYY-MM-DD, included): "
        "the status has not moved since. To list every change in a range, use "
        "/status-changes/?effective_after=…&effective_before=….",
    )

    class Meta:
        model = Recommendation
        fields = ["status", "document", "parent", "addressed_to", "is_priority"]

    def filter_agency(self, queryset, name, value):
        return filter_by_agency(queryset, value, role=self.data.get("role"))

    def filter_role(self, queryset, name, value):
        if self.data.get("agency"):
            return queryset  # applied together with the agency
        return queryset.filter(ownerships__role=value).distinct()

    def filter_theme(self, queryset, name, value):
        return filter_by_theme(queryset, value)

    def filter_changed_since(self, queryset, name, value):
        recorded = StatusChange.objects.filter(recorded_at__gte=value)
        return queryset.filter(Exists(recorded.filter(recommendation=OuterRef("pk"))))


class StatusChangeFilter(django_filters.FilterSet):
    recommendation = django_filters.ModelChoiceFilter(queryset=visible_recommendations)
    effective_after = django_filters.DateFilter(
        field_name="effective_on",
        lookup_expr="gte",
        label="Took effect on or after this day (YYYY-MM-DD, included)",
    )
    effective_before = django_filters.DateFilter(
        field_name="effective_on",
        lookup_expr="lte",
        label="Took effect on or before this day (YYYY-MM-DD, included)",
    )
    document = DocumentFilter(
        queryset=visible_documents,
        field_name="recommendation__document",
        label="Document, by code (WRC-2024) or id",
    )
    agency = django_filters.CharFilter(
        method="filter_agency",
        label="Owner agency of the recommendation, by id, acronym or slug, with its sub-agencies",
    )
    theme = django_filters.CharFilter(
        method="filter_theme", label="Theme of the recommendation, by slug or name"
    )

    class Meta:
        model = StatusChange
        fields = ["recommendation", "status"]

    def filter_agency(self, queryset, name, value):
        owners = Ownership.objects.filter(agency__in=agency_and_descendants(value))
        return queryset.filter(recommendation__in=owners.values("recommendation"))

    def filter_theme(self, queryset, name, value):
        return filter_by_theme(queryset, value, prefix="recommendation__")


class EvidenceFilter(django_filters.FilterSet):
    recommendations = django_filters.ModelMultipleChoiceFilter(queryset=visible_recommendations)
    published_after = django_filters.DateFilter(field_name="published_on", lookup_expr="gte")
    published_before = django_filters.DateFilter(field_name="published_on", lookup_expr="lte")

    class Meta:
        model = Evidence
        fields = ["kind", "effect", "recommendations"]
