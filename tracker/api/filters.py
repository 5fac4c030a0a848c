import django_filters
from django.db.models import Q

from ..models import Agency, Document, Evidence, Ownership, Recommendation, StatusChange


def agency_and_descendants(value):
    """Return the ids of the agency named by `value` (id or acronym) and all agencies under it."""
    value = str(value)
    # ASCII digits only: "³".isdigit() is true, yet no id.
    is_id = value.isascii() and value.isdigit()
    lookup = Q(pk=value) if is_id else Q(acronym__iexact=value)
    found = Agency.objects.filter(lookup).values_list("pk", flat=True)
    return set().union(*Agency.objects.families(list(found)).values())


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
    document = django_filters.ModelChoiceFilter(queryset=visible_documents)
    parent = django_filters.ModelChoiceFilter(queryset=visible_recommendations)
    agency = django_filters.CharFilter(
        method="filter_agency", label="Owner agency, by id or acronym, with its sub-agencies"
    )
    role = django_filters.ChoiceFilter(
        choices=Ownership.Role.choices, method="filter_role", label="Role of the agency filter"
    )
    theme = django_filters.CharFilter(method="filter_theme", label="Theme, by slug or name")
    changed_since = django_filters.IsoDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", label="Changed at or after (ISO 8601)"
    )
    status_changed_after = django_filters.DateFilter(
        field_name="status_changed_on", lookup_expr="gte"
    )
    status_changed_before = django_filters.DateFilter(
        field_name="status_changed_on", lookup_expr="lte"
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


class StatusChangeFilter(django_filters.FilterSet):
    recommendation = django_filters.ModelChoiceFilter(queryset=visible_recommendations)
    effective_after = django_filters.DateFilter(field_name="effective_on", lookup_expr="gte")
    effective_before = django_filters.DateFilter(field_name="effective_on", lookup_expr="lte")
    document = django_filters.NumberFilter(field_name="recommendation__document")

    class Meta:
        model = StatusChange
        fields = ["recommendation", "status"]


class EvidenceFilter(django_filters.FilterSet):
    recommendations = django_filters.ModelMultipleChoiceFilter(queryset=visible_recommendations)
    published_after = django_filters.DateFilter(field_name="published_on", lookup_expr="gte")
    published_before = django_filters.DateFilter(field_name="published_on", lookup_expr="lte")

    class Meta:
        model = Evidence
        fields = ["kind", "effect", "recommendations"]
