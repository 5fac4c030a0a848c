import copy
from collections import defaultdict

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.functional import cached_property
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import texts
from ..models import (
    ASSESSMENTS,
    CHECK_INTERVAL_TOO_LONG,
    CHECK_INTERVAL_TOO_SHORT,
    STATUS_WEIGHTS,
    Agency,
    ChangeAlert,
    Document,
    Evidence,
    Ownership,
    Publisher,
    Recommendation,
    Source,
    SourceVersion,
    StatusChange,
    sees_drafts,
)
from ..progress import INTERVALS

# The largest id the database can hold (a 64-bit signed integer).
MAX_ID = 2**63 - 1


@extend_schema_field(
    {"type": "object", "additionalProperties": {"type": "string", "enum": texts.CONTENT_LANGUAGES}}
)
class TextLanguagesField(serializers.Field):
    """Which language each text of the record is in: the one asked for (?lang= or
    Accept-Language), or the original's where no translation was given."""

    def __init__(self, **kwargs):
        super().__init__(
            source="*",
            read_only=True,
            help_text='The language each text is in, e.g. {"title": "es", "text": "en"}: the '
            "one asked for with ?lang= or Accept-Language, else the original's.",
            **kwargs,
        )

    def to_representation(self, value):
        return texts.languages_of(value, texts.translated_fields(type(value)))


class AgencyRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Agency
        fields = ["id", "name", "acronym"]


class OwnerSerializer(serializers.ModelSerializer):
    agency = AgencyRefSerializer()

    class Meta:
        model = Ownership
        fields = ["agency", "role"]


class StatusCountsField(serializers.DictField):
    """Counts of recommendations by status code."""

    child = serializers.IntegerField()


class ProgressSummarySerializer(serializers.ModelSerializer):
    """Counts by status and progress, from the `progress_summary` the view attaches."""

    counts = StatusCountsField(source="progress_summary.counts", read_only=True)
    progress = serializers.FloatField(source="progress_summary.progress", read_only=True)


class DocumentSerializer(ProgressSummarySerializer):
    publisher = serializers.SlugRelatedField(slug_field="name", queryset=Publisher.objects.all())
    languages = TextLanguagesField()

    class Meta:
        model = Document
        fields = [
            "id",
            "code",
            "title",
            "publisher",
            "author",
            "kind",
            "published_on",
            "url",
            "summary",
            "original_language",
            "languages",
            "counts",
            "progress",
        ]


class AliasesField(serializers.ListField):
    """The agency's aliases, stored one per line, as a list."""

    child = serializers.CharField()

    def to_representation(self, value):
        return [line.strip() for line in value.splitlines() if line.strip()]

    def to_internal_value(self, data):
        return "\n".join(alias.strip() for alias in super().to_internal_value(data))


class AgencySerializer(ProgressSummarySerializer):
    aliases = AliasesField(required=False)
    languages = TextLanguagesField()

    class Meta:
        model = Agency
        fields = [
            "id",
            "name",
            "acronym",
            "slug",
            "kind",
            "parent",
            "aliases",
            "languages",
            "counts",
            "progress",
        ]


class RollupSerializer(serializers.Serializer):
    sub_recommendations = serializers.IntegerField(source="total")
    moving = serializers.IntegerField(
        help_text="Sub-recommendations in a status other than not started or not assessed."
    )
    implemented = serializers.IntegerField()
    status = serializers.CharField(
        help_text="The status the recommendation shows: its own, unless its "
        "sub-recommendations contradict it."
    )
    from_sub_recommendations = serializers.BooleanField(source="from_children")


# One for every row: a serializer built per row copies its declared fields each time.
ROLLUP = RollupSerializer()
# What RecommendationSerializer.to_representation formats dates with, as its fields would.
DATE = serializers.DateField()


def flag_field(name):
    """A read-only boolean field bound to the model field `name` on its own, to show a flag
    the way DRF shows it without building a serializer's every field for it."""
    field = serializers.BooleanField(read_only=True)
    field.bind(name, serializers.Serializer())
    return field


# Shown as DRF shows it; only the models read the flag to decide anything (tests/test_rules.py).
PUBLICATION_FLAG = flag_field("is_published")


class LatestChangeSerializer(serializers.Serializer):
    status = serializers.CharField()
    effective_on = serializers.DateField()


class RecommendationSerializer(serializers.ModelSerializer):
    owners = OwnerSerializer(source="ownerships", many=True, read_only=True)
    themes = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    status = serializers.CharField(read_only=True)
    progress_weight = serializers.SerializerMethodField()
    latest_change = serializers.SerializerMethodField()
    last_verified_on = serializers.DateField(
        read_only=True,
        allow_null=True,
        help_text="When staff last confirmed the status: the later of their last review and "
        "the latest recorded status change; null if never.",
    )
    status_since = serializers.DateField(
        read_only=True,
        allow_null=True,
        help_text="The day the status holds from: the later of the change that set it and the "
        "document's publication (earlier history is background); null if not yet assessed.",
    )
    rollup = serializers.SerializerMethodField()
    languages = TextLanguagesField()

    class Meta:
        model = Recommendation
        fields = [
            "id",
            "code",
            "document",
            "parent",
            "position",
            "section_title",
            "title",
            "text",
            "note",
            "languages",
            "addressed_to",
            "owners",
            "themes",
            "status",
            "progress_weight",
            "latest_change",
            "last_verified_on",
            "status_since",
            "rollup",
            "is_priority",
            "is_published",
            "updated_at",
        ]

    def get_progress_weight(self, recommendation) -> float:
        return STATUS_WEIGHTS[recommendation.status]

    @extend_schema_field(LatestChangeSerializer(allow_null=True))
    def get_latest_change(self, recommendation):
        if recommendation.status_changed_on is None:
            return None
        return {"status": recommendation.status, "effective_on": recommendation.status_changed_on}

    @extend_schema_field(RollupSerializer(allow_null=True))
    def get_rollup(self, recommendation):
        """Its sub-recommendations' roll-up (null without any), as the viewset attached it."""
        rollup = getattr(recommendation, "rollup", None)
        return ROLLUP.to_representation(rollup) if rollup else None

    def validate(self, attrs):
        if self.instance and "document" in attrs and attrs["document"] != self.instance.document:
            raise serializers.ValidationError(
                {"document": "A recommendation stays in its document; import it into another."}
            )
        candidate = copy.copy(self.instance) if self.instance else Recommendation()
        for name in ("document", "parent"):
            if name in attrs:
                setattr(candidate, name, attrs[name])
        try:
            candidate.clean()  # the model's rules: same document, no cycle of parents
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return attrs

    def to_representation(self, instance):
        """Return what the fields above give, built directly: DRF's field-by-field path
        (get_attribute, nested serializers for each owner) costs more than a page's queries.
        A test holds the two together. Texts are read as texts.text_in reads them (the
        language found once per row, not per text); dates keep DRF's formats."""
        language = texts.reader_language()
        names = texts.translated_fields(Recommendation)
        shown = {name: texts.text_in(instance, name, language) for name in names}
        status = str(instance.status)
        return {
            "id": instance.pk,
            "code": instance.code,
            "document": instance.document_id,
            "parent": None if self.hides_parent_of(instance) else instance.parent_id,
            "position": instance.position,
            "section_title": instance.section_title,
            "title": shown["title"][0],
            "text": shown["text"][0],
            "note": shown["note"][0],
            "languages": {name: code for name, (text, code) in shown.items() if text},
            "addressed_to": str(instance.addressed_to),
            "owners": owners_of(instance),
            "themes": themes_of(instance),
            "status": status,
            "progress_weight": STATUS_WEIGHTS[status],
            "latest_change": self.get_latest_change(instance),
            "last_verified_on": date_or_none(DATE, instance.last_verified_on),
            "status_since": date_or_none(DATE, instance.status_since),
            "rollup": self.get_rollup(instance),
            "is_priority": instance.is_priority,
            "is_published": PUBLICATION_FLAG.to_representation(
                PUBLICATION_FLAG.get_attribute(instance)
            ),
            "updated_at": date_or_none(self.date_time_field, instance.updated_at),
        }

    @cached_property
    def date_time_field(self):
        """DRF's date-time field in the time zone of this request, found once for all rows
        (the field would look it up for each)."""
        return serializers.DateTimeField(default_timezone=timezone.get_current_timezone())

    def hides_parent_of(self, recommendation):
        """Whether the asker may not see the parent (a draft's id is not public)."""
        hidden = getattr(recommendation, "parent_hidden", None)  # the view says (with_rollups)
        if hidden is None:
            parent = recommendation.parent
            user = getattr(self.context.get("request"), "user", None)
            hidden = parent is not None and not parent.is_public and not sees_drafts(user)
        return hidden


def owners_of(recommendation):
    """Its owners as the API shows them: as the view read them for the page
    (`listed_owners`), else read now."""
    owners = getattr(recommendation, "listed_owners", None)
    return (
        owners_and_themes([recommendation.pk])[0][recommendation.pk] if owners is None else owners
    )


def themes_of(recommendation):
    themes = getattr(recommendation, "listed_themes", None)
    return (
        owners_and_themes([recommendation.pk])[1][recommendation.pk] if themes is None else themes
    )


def owners_and_themes(recommendation_ids):
    """Return ({id: owners}, {id: theme names}) of the recommendations of `ids` as the API
    shows them: owners lead first, then by agency name, themes by name, names in the
    reader's language as modeltranslation gives them (texts.text_among). Two queries of
    values: a page's model instances for them would cost more than the queries."""
    language = texts.reader_language()
    languages = texts.CONTENT_LANGUAGES
    owners, themes = defaultdict(list), defaultdict(list)
    rows = (
        Ownership.objects.filter(recommendation_id__in=recommendation_ids)
        .order_by("role", "agency__name")
        .values_list(
            "recommendation_id",
            "role",
            "agency_id",
            "agency__acronym",
            *(f"agency__name_{code}" for code in languages),
        )
    )
    for recommendation_id, role, agency_id, acronym, *names in rows:
        name = texts.text_among(dict(zip(languages, names, strict=True)), language)[0]
        agency = {"id": agency_id, "name": name, "acronym": acronym}
        owners[recommendation_id].append({"agency": agency, "role": str(role)})
    links = (
        Recommendation.themes.through.objects.filter(recommendation_id__in=recommendation_ids)
        # Theme's own order (by name), in the reader's language as modeltranslation sorts it.
        .order_by(f"theme__name_{language}")
        .values_list("recommendation_id", *(f"theme__name_{code}" for code in languages))
    )
    for recommendation_id, *names in links:
        name = texts.text_among(dict(zip(languages, names, strict=True)), language)[0]
        themes[recommendation_id].append(name)
    return owners, themes


def date_or_none(field, value):
    return None if value is None else field.to_representation(value)


class StatusChangeSerializer(serializers.ModelSerializer):
    # Annotated by tracker.changes.with_previous_status: null for a recommendation's first entry.
    previous_status = serializers.ChoiceField(
        choices=Recommendation.Status.choices,
        read_only=True,
        allow_null=True,
        help_text="The status before this change (null for the first change recorded).",
    )
    languages = TextLanguagesField()

    class Meta:
        model = StatusChange
        fields = [
            "id",
            "recommendation",
            "previous_status",
            "status",
            "effective_on",
            "rationale",
            "languages",
            "evidence",
            "recorded_at",
        ]


class RecordStatusSerializer(serializers.Serializer):
    """A new entry of a recommendation's history: evidence or a rationale is required."""

    status = serializers.ChoiceField(choices=[(s.value, s.label) for s in ASSESSMENTS])
    effective_on = serializers.DateField()
    evidence = serializers.PrimaryKeyRelatedField(
        queryset=Evidence.objects.all(), many=True, required=False
    )
    rationale = serializers.CharField(required=False, allow_blank=True, default="")


class EvidenceSerializer(serializers.ModelSerializer):
    languages = TextLanguagesField()

    class Meta:
        model = Evidence
        fields = [
            "id",
            "url",
            "title",
            "outlet",
            "published_on",
            "kind",
            "excerpt",
            "languages",
            "effect",
            "recommendations",
        ]


class SourceSerializer(serializers.ModelSerializer):
    is_broken = serializers.BooleanField(read_only=True)

    class Meta:
        model = Source
        fields = [
            "id",
            "url",
            "kind",
            "title",
            "recommendations",
            "evidence",
            "check_interval",
            "is_active",
            "last_checked_at",
            "last_changed_at",
            "consecutive_failures",
            "last_error",
            "next_check_at",
            "is_broken",
        ]
        # DRF turns the model's bounds into its own min/max checks: keep the model's words.
        extra_kwargs = {
            "check_interval": {
                "error_messages": {
                    "min_value": CHECK_INTERVAL_TOO_SHORT,
                    "max_value": CHECK_INTERVAL_TOO_LONG,
                }
            }
        }


class SourceVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceVersion
        fields = [
            "id",
            "source",
            "content_hash",
            "title",
            "text",
            "url",
            "http_status",
            "fetched_at",
        ]


class ChangeAlertSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChangeAlert
        fields = [
            "id",
            "source",
            "version",
            "previous_version",
            "diff",
            "created_at",
            "reviewed_at",
            "evidence",
        ]


class DocumentReferenceField(serializers.CharField):
    """A document by its code (WRC-2024) or its id: the id as an int, the code as a string."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Document, by code (WRC-2024) or id")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not (value.isascii() and value.isdigit()):
            if len(value) > Document._meta.get_field("code").max_length:
                raise serializers.ValidationError("No document has so long a code.")
            return value
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise serializers.ValidationError(f"An id is between 1 and {MAX_ID}.")
        return number


class ProgressQuerySerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=INTERVALS, default="month")
    from_ = serializers.DateField(required=False)
    to = serializers.DateField(required=False)
    document = DocumentReferenceField(required=False)
    agency = serializers.CharField(required=False)
    theme = serializers.CharField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # the query parameter is a Python keyword
        return fields

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"from": "from must not be after to."})
        return attrs


class ProgressPointSerializer(serializers.Serializer):
    period_end = serializers.DateField()
    counts = StatusCountsField()
    progress = serializers.FloatField(min_value=0, max_value=1)


class ProgressSeriesSerializer(serializers.Serializer):
    series = ProgressPointSerializer(many=True)


def progress_series_data(series):
    """Return what ProgressSeriesSerializer gives for `series`, built directly: a ten-year
    monthly series has 120 points of nine fields, and the serializer's per-field calls
    would cost more than reading the series from the ledger."""
    return {
        "series": [
            {
                "period_end": point["period_end"].isoformat(),
                "counts": {str(status): int(count) for status, count in point["counts"].items()},
                "progress": float(point["progress"]),
            }
            for point in series
        ]
    }


class ScorecardSerializer(serializers.Serializer):
    agency = AgencyRefSerializer()
    lead = StatusCountsField(help_text="Recommendations it or an agency under it leads, by status.")
    supporting = StatusCountsField(
        help_text="Recommendations it or an agency under it supports (and none leads), by status."
    )
    progress = serializers.FloatField(
        min_value=0, max_value=1, allow_null=True, help_text="Null when nothing is assigned."
    )
    implemented_count = serializers.IntegerField(
        help_text="Recommendations it leads that were implemented after publication."
    )
    median_days_to_implementation = serializers.FloatField(
        allow_null=True, help_text="Median days from publication to first implementation."
    )


class CurveQuerySerializer(serializers.Serializer):
    months = serializers.IntegerField(min_value=0, max_value=120, default=36)
    document = DocumentReferenceField(required=False)
    agency = serializers.CharField(required=False)
    theme = serializers.CharField(required=False)


class CurvePointSerializer(serializers.Serializer):
    months = serializers.IntegerField(help_text="Months since each document's publication.")
    eligible = serializers.IntegerField(help_text="Recommendations whose document is that old.")
    implemented = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True, min_value=0, max_value=1)


class CurveSerializer(serializers.Serializer):
    curve = CurvePointSerializer(many=True)
