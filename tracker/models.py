"""Tracker's domain: documents, their recommendations, who owns them, and the evidence-backed
history of their status."""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

# How often staff should re-verify a recommendation unless it says otherwise.
DEFAULT_REVIEW_INTERVAL_DAYS = 90


class Publisher(models.Model):
    name = models.CharField(max_length=200, unique=True)
    acronym = models.CharField(max_length=20, blank=True)
    url = models.URLField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Agency(models.Model):
    """A body a recommendation is addressed to: a US agency, or a partner such as a foreign
    government or an international organisation."""

    class Kind(models.TextChoices):
        US_GOVERNMENT = "us_government", "US government"
        PARTNER = "partner", "Partner (foreign government or international organisation)"

    name = models.CharField(max_length=200, unique=True)
    acronym = models.CharField(max_length=20, blank=True)
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.US_GOVERNMENT)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    aliases = models.TextField(
        blank=True, help_text="Other names the agency goes by in documents, one per line."
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "agencies"
        constraints = [
            models.UniqueConstraint(
                fields=["acronym"], condition=~models.Q(acronym=""), name="unique_agency_acronym"
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.acronym})" if self.acronym else self.name

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = slugify(self.acronym or self.name)[:80]
        super().save(*args, **kwargs)

    def clean(self):
        ancestor = self.parent
        while ancestor is not None:
            if ancestor.pk == self.pk and self.pk is not None:
                raise ValidationError({"parent": "An agency cannot be its own ancestor."})
            ancestor = ancestor.parent

    @property
    def alias_list(self):
        return [line.strip() for line in self.aliases.splitlines() if line.strip()]

    @property
    def display_name(self):
        return self.acronym or self.name


class Theme(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = slugify(self.name)[:100]
        super().save(*args, **kwargs)


class Document(models.Model):
    class Kind(models.TextChoices):
        REPORT = "report", "Report"
        BRIEF = "brief", "Policy brief"
        OP_ED = "op_ed", "Op-ed"
        LETTER = "letter", "Letter"
        TESTIMONY = "testimony", "Testimony"

    code = models.CharField(
        max_length=40,
        unique=True,
        help_text="Prefix of this document's recommendation codes, e.g. WRC-2024.",
    )
    title = models.CharField(max_length=300)
    publisher = models.ForeignKey(Publisher, on_delete=models.PROTECT, related_name="documents")
    author = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.REPORT)
    published_on = models.DateField(null=True, blank=True)
    url = models.URLField(blank=True, max_length=500)
    summary = models.TextField(blank=True)
    addressee = models.ForeignKey(
        Agency,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who the document speaks to; the lead owner where a recommendation names none.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_on", "title"]

    def __str__(self):
        return self.title


class Recommendation(models.Model):
    class Status(models.TextChoices):
        NOT_STARTED = "not_started", "Not started"
        IN_PROGRESS = "in_progress", "In progress"
        PARTIAL = "partial", "Partially implemented"
        IMPLEMENTED = "implemented", "Implemented"
        STALLED = "stalled", "Stalled"
        REVERSED = "reversed", "Reversed"

        @property
        def weight(self):
            return STATUS_WEIGHTS[self]

    class AddressedTo(models.TextChoices):
        ADMINISTRATION = "administration", "The administration"
        CONGRESS = "congress", "Congress"
        AGENCY = "agency", "A named agency"
        PARTNER = "partner", "A partner government or organisation"

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="recommendations")
    code = models.CharField(max_length=60, help_text="Stable code, e.g. WRC-2024-2.1.")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    position = models.PositiveIntegerField(default=0, help_text="Order within the document.")
    section_title = models.CharField(max_length=300, blank=True)
    title = models.CharField("short title", max_length=200)
    text = models.TextField(help_text="Full text as published.")
    note = models.TextField(blank=True, help_text="Context the document gives after the text.")
    addressed_to = models.CharField(
        max_length=20, choices=AddressedTo.choices, default=AddressedTo.ADMINISTRATION
    )
    owners = models.ManyToManyField(Agency, through="Ownership", related_name="recommendations")
    themes = models.ManyToManyField(Theme, blank=True, related_name="recommendations")
    is_priority = models.BooleanField("priority", default=False)
    is_published = models.BooleanField(
        "published", default=False, help_text="Drafts never appear publicly."
    )
    weight = models.PositiveSmallIntegerField(
        default=1, help_text="Weight of this recommendation in its parent's progress."
    )
    review_interval_days = models.PositiveSmallIntegerField(
        default=DEFAULT_REVIEW_INTERVAL_DAYS,
        help_text="How often staff should re-verify the status, in days.",
    )
    last_reviewed_on = models.DateField(null=True, blank=True)
    # Kept in step with the history by refresh_status(); never set directly.
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.NOT_STARTED, editable=False
    )
    status_changed_on = models.DateField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["document", "position", "code"]
        constraints = [
            models.UniqueConstraint(fields=["document", "code"], name="unique_code_per_document"),
        ]
        indexes = [
            # The admin's and the public lists' filter by status.
            models.Index(fields=["status"], name="recommendation_status_idx"),
        ]

    def __str__(self):
        return f"{self.code}: {self.title}"

    def get_absolute_url(self):
        return reverse("admin:tracker_recommendation_change", args=[self.pk])

    def clean(self):
        if self.parent_id is None:
            return
        if self.parent_id == self.pk:
            raise ValidationError({"parent": "A recommendation cannot be its own parent."})
        if self.parent.document_id != self.document_id:
            raise ValidationError({"parent": "The parent must belong to the same document."})
        ancestor = self.parent
        while ancestor is not None:
            if ancestor.pk == self.pk:
                raise ValidationError({"parent": "This would make a cycle of parents."})
            ancestor = ancestor.parent

    @property
    def progress_weight(self):
        return STATUS_WEIGHTS[self.status]

    @property
    def review_due_on(self):
        reviewed = self.last_reviewed_on or self.status_changed_on or self.created_at.date()
        return reviewed + datetime.timedelta(days=self.review_interval_days)

    def record_status(self, status, *, effective_on, evidence=(), rationale="", by=None):
        """Append a status change to the history and bring the current status in line.

        1. A change must cite evidence or give a rationale, and cannot be dated in the future.
        2. The evidence is linked to this recommendation as well as to the change.
        3. The current status is re-derived from the whole history, so a change dated before
           the latest one is recorded without overriding it.
        """
        status = self.Status(status)
        evidence = list(evidence)
        rationale = (rationale or "").strip()
        if not evidence and not rationale:
            raise ValidationError("A status change needs evidence or a rationale.")
        if effective_on > timezone.localdate():
            raise ValidationError("A status change cannot take effect in the future.")
        with transaction.atomic():
            change = StatusChange.objects.create(
                recommendation=self,
                status=status,
                effective_on=effective_on,
                rationale=rationale,
                recorded_by=by,
            )
            if evidence:
                change.evidence.set(evidence)
                self.evidence.add(*evidence)
            self.last_reviewed_on = timezone.localdate()
            self.save(update_fields=["last_reviewed_on", "updated_at"])
            self.refresh_status()
        return change

    def refresh_status(self):
        """Set the current status from the latest effective change (the one rule for it)."""
        latest = self.status_changes.latest_first().first()
        self.status = latest.status if latest else self.Status.NOT_STARTED
        self.status_changed_on = latest.effective_on if latest else None
        self.save(update_fields=["status", "status_changed_on", "updated_at"])


# Each status's contribution to progress, from 0 (nothing done) to 1 (done).
STATUS_WEIGHTS = {
    Recommendation.Status.NOT_STARTED: 0.0,
    Recommendation.Status.IN_PROGRESS: 0.25,
    Recommendation.Status.PARTIAL: 0.5,
    Recommendation.Status.IMPLEMENTED: 1.0,
    Recommendation.Status.STALLED: 0.0,
    Recommendation.Status.REVERSED: 0.0,
}


class Ownership(models.Model):
    class Role(models.TextChoices):
        LEAD = "lead", "Lead"
        SUPPORTING = "supporting", "Supporting"

    recommendation = models.ForeignKey(
        Recommendation, on_delete=models.CASCADE, related_name="ownerships"
    )
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="ownerships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.SUPPORTING)

    class Meta:
        ordering = ["role", "agency__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["recommendation", "agency"], name="unique_owner_per_recommendation"
            ),
            models.UniqueConstraint(
                fields=["recommendation"],
                condition=models.Q(role="lead"),
                name="one_lead_per_recommendation",
            ),
        ]

    def __str__(self):
        return f"{self.agency.display_name} ({self.get_role_display().lower()})"


class Evidence(models.Model):
    class Kind(models.TextChoices):
        NEWS_REPORT = "news_report", "News report"
        OFFICIAL_ANNOUNCEMENT = "official_announcement", "Official announcement"
        PROPOSED_RULE = "proposed_rule", "Proposed rule"
        FINAL_RULE = "final_rule", "Final rule"
        GUIDANCE = "guidance", "Guidance"
        FUNDING = "funding", "Funding"
        LEGISLATION = "legislation", "Legislation"
        LITIGATION = "litigation", "Litigation"
        STATEMENT = "statement", "Statement"

    class Effect(models.TextChoices):
        ADVANCES = "advances", "Advances"
        SETBACK = "setback", "Setback"
        CONTEXT = "context", "Context"

    url = models.URLField("URL", max_length=500, blank=True)
    title = models.CharField(max_length=300)
    outlet = models.CharField(max_length=200, blank=True)
    published_on = models.DateField(null=True, blank=True)
    kind = models.CharField(max_length=30, choices=Kind.choices, default=Kind.NEWS_REPORT)
    excerpt = models.TextField("quoted excerpt", blank=True)
    effect = models.CharField(max_length=20, choices=Effect.choices, default=Effect.CONTEXT)
    recommendations = models.ManyToManyField(Recommendation, blank=True, related_name="evidence")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_on", "title"]
        verbose_name_plural = "evidence"

    def __str__(self):
        return f"{self.title} ({self.outlet})" if self.outlet else self.title


class StatusChangeQuerySet(models.QuerySet):
    def latest_first(self):
        # A correction is a new entry with the same effective date: the later record wins.
        return self.order_by("-effective_on", "-recorded_at", "-pk")


class StatusChange(models.Model):
    """One entry of a recommendation's append-only status history."""

    recommendation = models.ForeignKey(
        Recommendation, on_delete=models.CASCADE, related_name="status_changes"
    )
    status = models.CharField(max_length=20, choices=Recommendation.Status.choices)
    effective_on = models.DateField(help_text="When it happened in the world.")
    rationale = models.TextField(blank=True)
    evidence = models.ManyToManyField(Evidence, blank=True, related_name="status_changes")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = StatusChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-effective_on", "-recorded_at", "-pk"]
        get_latest_by = "effective_on"
        indexes = [
            # status_as_of(): the latest change on or before a date, per recommendation.
            models.Index(
                fields=["recommendation", "-effective_on", "-recorded_at"],
                name="statuschange_asof_idx",
            ),
        ]

    def __str__(self):
        return f"{self.recommendation.code}: {self.get_status_display()} on {self.effective_on}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Status history is append-only: record a new change instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Status history is append-only: record a correcting change instead.")
