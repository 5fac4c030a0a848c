"""Tracker's domain: documents, their recommendations, who owns them, and the evidence-backed
history of their status."""

import datetime
import secrets
from collections import defaultdict
from urllib.parse import urlsplit

from auditlog.context import disable_auditlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Coalesce, TruncDate
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from .audit import diff_entry, m2m_entry, write_entries
from .caching import note_data_changed, status_writes

# How often staff should re-verify a recommendation unless it says otherwise.
DEFAULT_REVIEW_INTERVAL_DAYS = 90

# Sent by Recommendation.record_status inside its transaction, with `change` and the
# `evidence` it cites: how a higher module (webhooks) hears of a change without the models
# importing it. Receivers are connected in TrackerConfig.ready().
status_changed = Signal()


class Publisher(models.Model):
    name = models.CharField(max_length=200, unique=True)
    acronym = models.CharField(max_length=20, blank=True)
    url = models.URLField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AgencyQuerySet(models.QuerySet):
    def families(self, agency_ids=None):
        """Return {agency id: {its id and its sub-agencies' ids, at any depth}} for the agencies
        in `agency_ids` (default: this queryset's), in one query over the whole directory.

        The one rule for "an agency and its sub-agencies": pages, scorecards, feeds, the API,
        digests and reports all count what an agency's sub-agencies own as the agency's.
        """
        children = defaultdict(list)
        for pk, parent_id in Agency.objects.values_list("pk", "parent_id"):
            children[parent_id].append(pk)
        if agency_ids is None:
            agency_ids = self.values_list("pk", flat=True)
        families = {}
        for pk in agency_ids:
            members, stack = set(), [pk]
            while stack:
                member = stack.pop()
                if member not in members:
                    members.add(member)
                    stack.extend(children[member])
            families[pk] = members
        return families

    def family_of(self, agency):
        """The agency and every agency under it, at any depth."""
        return self.filter(pk__in=agency.family_ids())

    def owning(self, ownerships):
        """The agencies among these that own one of `ownerships`' recommendations, themselves
        or through a sub-agency. Three queries, made now."""
        owners = set(ownerships.values_list("agency_id", flat=True))
        families = self.families()
        return self.filter(pk__in=[pk for pk, members in families.items() if members & owners])

    def with_descendants(self):
        """These agencies and every agency under them, at any depth (families)."""
        ids = set().union(*self.families().values())
        return Agency.objects.filter(pk__in=ids)


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

    objects = AgencyQuerySet.as_manager()

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

    def get_absolute_url(self):
        return reverse("public:agency", kwargs={"slug": self.slug})

    def clean(self):
        ancestor = self.parent
        while ancestor is not None:
            if ancestor.pk == self.pk and self.pk is not None:
                raise ValidationError({"parent": "An agency cannot be its own ancestor."})
            ancestor = ancestor.parent

    def family_ids(self):
        """Return the ids of this agency and of every agency under it (AgencyQuerySet.families)."""
        return Agency.objects.families([self.pk])[self.pk]

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


class DocumentQuerySet(models.QuerySet):
    def public(self):
        """Documents with at least one published recommendation: a document whose
        recommendations are all drafts is embargoed, title and summary included."""
        return self.filter(Exists(Recommendation.objects.public().filter(document=OuterRef("pk"))))

    def visible_to(self, user):
        return self.all() if sees_drafts(user) else self.public()


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
    original_language = models.CharField(
        max_length=5,
        choices=settings.LANGUAGES,
        default="en",
        help_text="The language the document was published in; its texts' other language is "
        "a translation.",
    )
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

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-published_on", "title"]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("public:document", kwargs={"code": self.code})

    def predates(self, day):
        """Whether `day` falls before the document's publication: history from then is
        background to the document, not a response to it (the one rule for it)."""
        return self.published_on is not None and day is not None and day < self.published_on


def sees_drafts(user):
    """Drafts are for staff who may view recommendations (as in the admin): everyone else
    sees published recommendations only."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_staff
        and user.has_perm("tracker.view_recommendation")
    )


class RecommendationQuerySet(models.QuerySet):
    def public(self):
        """Published recommendations still in their document: the one place the publication
        flag and the withdrawal are read."""
        return self.current().filter(is_published=True)

    def visible_to(self, user):
        """Staff who see drafts see them too; nobody sees withdrawn recommendations outside
        the admin, where their history stays."""
        return self.current() if sees_drafts(user) else self.public()

    def current(self):
        """Recommendations the latest import of their document still contains."""
        return self.filter(withdrawn_at__isnull=True)

    def review_overdue(self, *, today=None):
        """Recommendations whose review is late on `today`: the SQL form of
        Recommendation.is_review_overdue (the one rule; a test holds the two together).

        Runs one query at once for the review intervals in use, so that the comparison stays
        a plain date comparison on every database.
        """
        today = today or timezone.localdate()
        in_use = self.order_by().prefetch_related(None)
        intervals = in_use.values_list("review_interval_days", flat=True).distinct()
        late = models.Q(pk__in=[])
        for days in intervals:
            due_before = today - datetime.timedelta(days=days)
            late |= models.Q(review_interval_days=days, reviewed_on__lt=due_before)
        reviewed_on = Coalesce("last_reviewed_on", "status_changed_on", TruncDate("created_at"))
        return self.alias(reviewed_on=reviewed_on).filter(late)

    def renumbered_from(self, document_code, code):
        """The recommendation that last had `code` in this document and has another now (a
        new version renumbered it), or None."""
        return (
            self.filter(document__code=document_code, former_codes__code=code)
            .exclude(code=code)
            .order_by("-former_codes__replaced_at", "-former_codes__pk")
            .first()
        )


class Recommendation(models.Model):
    class Status(models.TextChoices):
        # Plain labels (the admin, the API and the migrations read them), marked for
        # translation: tracker.labels translates these same texts for the public.
        # Not yet assessed: staff have recorded no status change. Not started is an
        # assessment (nothing has been done), so the two never read alike.
        NOT_ASSESSED = "not_assessed", gettext_noop("Not yet assessed")
        NOT_STARTED = "not_started", gettext_noop("Not started")
        IN_PROGRESS = "in_progress", gettext_noop("In progress")
        PARTIAL = "partial", gettext_noop("Partially implemented")
        IMPLEMENTED = "implemented", gettext_noop("Implemented")
        STALLED = "stalled", gettext_noop("Stalled")
        REVERSED = "reversed", gettext_noop("Reversed")

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
    withdrawn_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a re-import of the document no longer had it; withdrawn "
        "recommendations keep their history but never appear publicly.",
    )
    weight = models.PositiveSmallIntegerField(
        default=1, help_text="Weight of this recommendation in its parent's progress."
    )
    review_interval_days = models.PositiveSmallIntegerField(
        default=DEFAULT_REVIEW_INTERVAL_DAYS,
        help_text="How often staff should re-verify the status, in days.",
    )
    last_reviewed_on = models.DateField(null=True, blank=True)
    # Kept in step with the history by record_status() (see current_status); never set directly.
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.NOT_ASSESSED, editable=False
    )
    status_changed_on = models.DateField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RecommendationQuerySet.as_manager()

    class Meta:
        ordering = ["document", "position", "code"]
        constraints = [
            models.UniqueConstraint(fields=["document", "code"], name="unique_code_per_document"),
        ]
        indexes = [
            # The admin's and the public lists' filter by status.
            models.Index(fields=["status"], name="recommendation_status_idx"),
            # The API list in its default order (document, position, code, id), for staff and
            # the public (is_published is in it): a page skips the earlier rows and the count
            # counts them in this index alone, without reading the table.
            models.Index(
                fields=["document", "position", "code", "id", "is_published"],
                condition=models.Q(withdrawn_at__isnull=True),
                name="recommendation_list_idx",
            ),
        ]

    def __str__(self):
        return f"{self.code}: {self.title}"

    def get_absolute_url(self):
        """The public page (drafts have none: it answers 404 until published)."""
        return reverse(
            "public:recommendation", kwargs={"document": self.document.code, "code": self.code}
        )

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
    def is_public(self):
        """Whether the public may see this one; the same rule as RecommendationQuerySet.public."""
        return self.is_published and self.withdrawn_at is None

    @property
    def review_due_on(self):
        """The day to re-verify the status by: one interval after the last review, else the
        last status change, else the day it was added, all local dates (TIME_ZONE), as staff
        live them. The one rule: the admin and the staff digest read it."""
        reviewed = (
            self.last_reviewed_on or self.status_changed_on or timezone.localdate(self.created_at)
        )
        return reviewed + datetime.timedelta(days=self.review_interval_days)

    @property
    def last_verified_on(self):
        """The day staff last confirmed the status (None if never): the later of the last
        review ("mark reviewed") and the day the latest status change was recorded. Recording
        a change sets last_reviewed_on to that day (record_status), so the later of the two is
        last_reviewed_on, unless history arrived without a review (an old backup): then its
        effective date stands in. No query."""
        return max(filter(None, (self.last_reviewed_on, self.status_changed_on)), default=None)

    @property
    def status_since(self):
        """The day the status reads "since": the later of the change that set it and the
        document's date, as history before the document is background to it."""
        if self.document.predates(self.status_changed_on):
            return self.document.published_on
        return self.status_changed_on

    @property
    def status_predates_document(self):
        """Whether the current status was set before the document was published."""
        return self.status_since != self.status_changed_on

    def is_review_overdue(self, *, today=None):
        """Whether the review is late: from the local day after `review_due_on`."""
        return self.review_due_on < (today or timezone.localdate())

    @staticmethod
    def status_change_problems(status, *, effective_on, evidence, rationale):
        """What stops a status change from being recorded, by form field ({} when nothing
        does): record_status's rules, which a form also shows beside its fields, all at
        once. A missing status or date is left to the form to report."""
        problems = {}
        if status and status not in ASSESSMENTS:
            problems["status"] = "“Not yet assessed” is the absence of a status change."
        if effective_on and effective_on > timezone.localdate():
            problems["effective_on"] = "A status change cannot take effect in the future."
        if not evidence and not (rationale or "").strip():
            problems["rationale"] = "A status change needs evidence or a rationale."
        return problems

    def record_status(self, status, *, effective_on, evidence=(), rationale="", by=None):
        """Append a status change to the history and bring the current status in line.

        1. A change must cite evidence or give a rationale, and cannot be dated in the future.
        2. The evidence is linked to this recommendation as well as to the change, and
           `status_changed` is sent inside the transaction (webhooks queue their deliveries
           for after the commit).
        3. The current status is re-derived from the whole history (current_status's rule),
           so a change dated before the latest one is recorded without overriding it.
        4. It costs what it must (bench/status_change.py): one save of the recommendation,
           the audit entries in one query, one new cache version at commit (the list keeps
           its other rows: one query per ancestor finds those to build anew). The links go
           in by bulk_create and the saves under disable_auditlog, so no signal writes an
           entry of its own.
        """
        status = self.Status(status)
        evidence = list({item.pk: item for item in evidence}.values())
        rationale = (rationale or "").strip()
        problems = self.status_change_problems(
            status, effective_on=effective_on, evidence=evidence, rationale=rationale
        )
        if problems:
            raise ValidationError(list(problems.values()))
        # Only this recommendation's status and its ancestors' roll-ups change: the list's
        # other kept rows stay valid (tracker.caching).
        with transaction.atomic(), disable_auditlog(), status_writes(self.lineage_ids()):
            # Serialise recordings on this recommendation, so the status follows all of them;
            # the row read is what the audit entry compares against.
            before = Recommendation.objects.select_for_update().get(pk=self.pk)
            change = StatusChange.objects.create(
                recommendation=self,
                status=status,
                effective_on=effective_on,
                rationale=rationale,
                recorded_by=by,
            )
            linked = self._link_evidence(change, evidence)
            note_data_changed()  # bulk_create sends no signals
            self.last_reviewed_on = timezone.localdate()
            self.status, self.status_changed_on = self.current_status()
            fields = ["last_reviewed_on", "status", "status_changed_on", "updated_at"]
            self.save(update_fields=fields)
            write_entries(
                [
                    diff_entry(None, change),
                    m2m_entry(change, "evidence", evidence) if evidence else None,
                    *(m2m_entry(item, "recommendations", [self]) for item in linked),
                    diff_entry(before, self, fields=fields),
                ]
            )
            status_changed.send(sender=Recommendation, change=change, evidence=evidence)
        return change

    def lineage_ids(self):
        """Return the ids of this recommendation and of its ancestors, nearest first: those
        whose roll-ups its status feeds. One query per ancestor."""
        ids, parent_id = [self.pk], self.parent_id
        while parent_id is not None and parent_id not in ids:
            ids.append(parent_id)
            parent_id = (
                Recommendation.objects.filter(pk=parent_id)
                .values_list("parent_id", flat=True)
                .first()
            )
        return ids

    def _link_evidence(self, change, evidence):
        """Cite `evidence` in `change` and link it to this recommendation; return the items
        that were not linked to it before."""
        CitedEvidence.objects.bulk_create(
            CitedEvidence(status_change=change, evidence=item) for item in evidence
        )
        links = Evidence.recommendations.through
        already = set(
            links.objects.filter(recommendation=self, evidence__in=evidence).values_list(
                "evidence_id", flat=True
            )
        )
        linked = [item for item in evidence if item.pk not in already]
        links.objects.bulk_create(links(evidence=item, recommendation=self) for item in linked)
        return linked

    def current_status(self):
        """Return (status, effective date) of the latest effective change: the one rule."""
        latest = self.status_changes.latest_first().first()
        if latest is None:
            return self.Status.NOT_ASSESSED, None
        return latest.status, latest.effective_on


# The statuses a status change can record: all but "not yet assessed", which is the lack of one.
ASSESSMENTS = [s for s in Recommendation.Status if s != Recommendation.Status.NOT_ASSESSED]

# Each status's contribution to progress, from 0 (nothing done) to 1 (done).
# Not yet assessed counts as nothing done; the pages say how many are not assessed beside it.
STATUS_WEIGHTS = {
    Recommendation.Status.NOT_ASSESSED: 0.0,
    Recommendation.Status.NOT_STARTED: 0.0,
    Recommendation.Status.IN_PROGRESS: 0.25,
    Recommendation.Status.PARTIAL: 0.5,
    Recommendation.Status.IMPLEMENTED: 1.0,
    Recommendation.Status.STALLED: 0.0,
    Recommendation.Status.REVERSED: 0.0,
}


class FormerCode(models.Model):
    """A code a recommendation had until a new version of its document renumbered it, so
    links to the old code still lead to the ask (the public pages redirect them)."""

    recommendation = models.ForeignKey(
        Recommendation, on_delete=models.CASCADE, related_name="former_codes"
    )
    code = models.CharField(max_length=60)
    replaced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-replaced_at", "-pk"]
        indexes = [models.Index(fields=["code"], name="former_code_idx")]

    def __str__(self):
        return f"{self.code}, now {self.recommendation.code}"


class OwnershipQuerySet(models.QuerySet):
    def public(self):
        return self.filter(recommendation__in=Recommendation.objects.public())

    def current(self):
        return self.filter(recommendation__in=Recommendation.objects.current())


class Ownership(models.Model):
    class Role(models.TextChoices):
        LEAD = "lead", "Lead"
        SUPPORTING = "supporting", "Supporting"

    recommendation = models.ForeignKey(
        Recommendation, on_delete=models.CASCADE, related_name="ownerships"
    )
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="ownerships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.SUPPORTING)

    objects = OwnershipQuerySet.as_manager()

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


class EvidenceQuerySet(models.QuerySet):
    def public(self):
        """Evidence bearing on a published recommendation: linked to one, or cited by one of
        its status changes. A citation keeps evidence public after it is unlinked: the
        published history still rests on it (and cannot be edited), so hiding it would show
        a change without its grounds and a kept copy that is not found."""
        return self.filter(
            Exists(Recommendation.objects.public().filter(evidence=OuterRef("pk")))
            | Exists(StatusChange.objects.public().filter(evidence=OuterRef("pk")))
        )

    def visible_to(self, user):
        return self.all() if sees_drafts(user) else self.public()


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

    objects = EvidenceQuerySet.as_manager()

    class Meta:
        ordering = ["-published_on", "title"]
        verbose_name_plural = "evidence"

    def __str__(self):
        return f"{self.title} ({self.outlet})" if self.outlet else self.title


# A correction is a new entry with the same effective date: the later record wins.
LATEST_CHANGE_FIRST = ["-effective_on", "-recorded_at", "-pk"]


def describe_evidence_link(link):
    """A row of the table linking evidence to recommendations, as the admin's inline names
    it: the evidence (the table is Django's own, so it has no model of ours to say so)."""
    return str(link.evidence)


Evidence.recommendations.through.__str__ = describe_evidence_link


class StatusChangeQuerySet(models.QuerySet):
    def public(self):
        """The history of published recommendations."""
        return self.filter(recommendation__in=Recommendation.objects.public())

    def visible_to(self, user):
        return self.all() if sees_drafts(user) else self.public()

    def latest_first(self):
        return self.order_by(*LATEST_CHANGE_FIRST)


class StatusChange(models.Model):
    """One entry of a recommendation's append-only status history."""

    # PROTECT: a recommendation (or document) with a history cannot be deleted, and neither
    # can evidence a change cites; history is never lost.
    recommendation = models.ForeignKey(
        Recommendation, on_delete=models.PROTECT, related_name="status_changes"
    )
    status = models.CharField(max_length=20, choices=Recommendation.Status.choices)
    effective_on = models.DateField(help_text="When it happened in the world.")
    rationale = models.TextField(blank=True)
    evidence = models.ManyToManyField(
        Evidence, blank=True, through="CitedEvidence", related_name="status_changes"
    )
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
        ordering = LATEST_CHANGE_FIRST
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

    @property
    def predates_document(self):
        """Whether this change took effect before its document was published: background to
        the document (Document.predates)."""
        return self.recommendation.document.predates(self.effective_on)


class CitedEvidence(models.Model):
    """Evidence cited by a status change; the evidence cannot be deleted while cited."""

    status_change = models.ForeignKey(StatusChange, on_delete=models.CASCADE)
    evidence = models.ForeignKey(Evidence, on_delete=models.PROTECT)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["status_change", "evidence"], name="unique_evidence_per_change"
            ),
        ]

    def __str__(self):
        return f"{self.status_change} cites {self.evidence}"


# A source failing this many checks in a row is flagged as broken in the admin.
BROKEN_AFTER_FAILURES = 3
# A source's monitoring state, which every check rewrites (tracker.monitoring): shown
# read-only in the admin but for the schedule staff may move, and left out of the audit log,
# where it would bury the edits people make.
CHECK_STATE_FIELDS = [
    "last_checked_at",
    "last_changed_at",
    "etag",
    "last_modified",
    "content_hash",
    "consecutive_failures",
    "last_error",
    "next_check_at",
]


# A source's check interval: no more often than the dispatcher runs, no rarer than a quarter.
MIN_CHECK_INTERVAL = datetime.timedelta(minutes=1)
MAX_CHECK_INTERVAL = datetime.timedelta(days=90)
CHECK_INTERVAL_TOO_SHORT = "Check a source at most once a minute: give at least 00:01:00."
CHECK_INTERVAL_TOO_LONG = "Check a source at least every 90 days: give at most 90 00:00:00."


class Source(models.Model):
    """A web page or feed watched for changes that may bear on recommendations."""

    # The audit log, below the models, reads the list from here (tracker.audit).
    check_state_fields = CHECK_STATE_FIELDS

    class Kind(models.TextChoices):
        PAGE = "page", "Web page"
        FEED = "feed", "RSS/Atom feed"

    url = models.URLField("URL", max_length=1000, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PAGE)
    title = models.CharField(max_length=300, blank=True)
    recommendations = models.ManyToManyField(Recommendation, blank=True, related_name="sources")
    evidence = models.ManyToManyField(Evidence, blank=True, related_name="sources")
    check_interval = models.DurationField(
        default=datetime.timedelta(hours=24),
        validators=[
            MinValueValidator(MIN_CHECK_INTERVAL, message=CHECK_INTERVAL_TOO_SHORT),
            MaxValueValidator(MAX_CHECK_INTERVAL, message=CHECK_INTERVAL_TOO_LONG),
        ],
        help_text="How often to check, as [days] hh:mm:ss: from 1 minute to 90 days.",
    )
    is_active = models.BooleanField("active", default=True)
    # State of the last checks, kept by tracker.monitoring.
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    etag = models.CharField("ETag", max_length=300, blank=True, editable=False)
    last_modified = models.CharField(max_length=100, blank=True, editable=False)
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    next_check_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]
        # No index on next_check_at, which every check rewrites: an update that changes no
        # indexed column stays on its page (PostgreSQL's HOT), so rows do not bloat. The
        # dispatcher's minute scan of the table costs milliseconds, even at 100,000 sources.
        constraints = [
            # A zero or negative interval would check without pause and undo the backoff.
            models.CheckConstraint(
                condition=models.Q(check_interval__gte=MIN_CHECK_INTERVAL)
                & models.Q(check_interval__lte=MAX_CHECK_INTERVAL),
                name="source_check_interval_bounds",
            ),
        ]

    def __str__(self):
        return self.title or self.url

    @property
    def is_broken(self):
        return self.consecutive_failures >= BROKEN_AFTER_FAILURES


class SourceClaim(models.Model):
    """A check of a source that is queued or running (tracker.monitoring): while it lasts, no
    dispatcher queues the source again. Work in flight, not data: never backed up.

    The source's own row keeps its due time, so a check is written to the source once and
    the next one is timed from when this one was due.
    """

    source = models.OneToOneField(
        Source, on_delete=models.CASCADE, primary_key=True, related_name="claim"
    )
    claimed_at = models.DateTimeField()
    # When a check lost on the way (its message, its process) is given up on and claimed again.
    expires_at = models.DateTimeField()
    # The life of the queue the check was sent to: a queue that restarted empty has another.
    queue_epoch = models.CharField(max_length=32, blank=True)
    # Starts since the claim was made or its check was last put off: a check that keeps
    # killing its process is recorded as failed instead of being started for ever.
    starts = models.PositiveSmallIntegerField(default=0)

    def __str__(self):
        return f"check of {self.source_id} claimed at {self.claimed_at:%Y-%m-%d %H:%M:%S}"


class SourceVersion(models.Model):
    """A distinct text a source has shown: the kept copy, since pages get rewritten."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="versions")
    content_hash = models.CharField(max_length=64)
    title = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    url = models.URLField("final URL", max_length=1000)
    http_status = models.PositiveSmallIntegerField()
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["-fetched_at"]
        get_latest_by = "fetched_at"
        constraints = [
            models.UniqueConstraint(
                fields=["source", "content_hash"], name="unique_version_per_source"
            ),
        ]

    def __str__(self):
        return f"{self.source} at {self.fetched_at:%Y-%m-%d %H:%M}"


# The staff inbox: unreviewed alerts first, newest first within each group.
INBOX_ORDER = [models.F("reviewed_at").asc(nulls_first=True), "-created_at", "-pk"]


class ChangeAlertQuerySet(models.QuerySet):
    def unreviewed(self):
        return self.filter(reviewed_at__isnull=True)

    def inbox_order(self):
        return self.order_by(*INBOX_ORDER)


class ChangeAlert(models.Model):
    """A change seen on a source, waiting for staff to review it."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="alerts")
    version = models.ForeignKey(SourceVersion, on_delete=models.CASCADE, related_name="alerts")
    previous_version = models.ForeignKey(
        SourceVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    diff = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence = models.ForeignKey(
        Evidence, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )

    objects = ChangeAlertQuerySet.as_manager()

    class Meta:
        ordering = INBOX_ORDER
        indexes = [
            # The inbox: unreviewed first, newest first.
            models.Index(fields=["reviewed_at", "-created_at"], name="alert_inbox_idx"),
        ]

    def __str__(self):
        return f"Change on {self.source} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_reviewed(self):
        return self.reviewed_at is not None


class FeedEntryQuerySet(models.QuerySet):
    def unseen(self, entries, *, source_id):
        """Return those of `entries` (dicts with a "guid") that the feed `source_id` has not
        stored yet, in order: one query."""
        guids = [entry["guid"] for entry in entries]
        known = set(self.filter(source_id=source_id, guid__in=guids).values_list("guid", flat=True))
        return [entry for entry in entries if entry["guid"] not in known]


class FeedEntry(models.Model):
    """An entry seen in a watched feed: candidate evidence for staff to accept or dismiss."""

    class State(models.TextChoices):
        NEW = "new", "New"
        ACCEPTED = "accepted", "Accepted as evidence"
        DISMISSED = "dismissed", "Dismissed"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="entries")
    guid = models.CharField(max_length=1000, help_text="The entry's id, else its link.")
    link = models.URLField(max_length=1000, blank=True)
    title = models.CharField(max_length=500, blank=True)
    summary = models.TextField(blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=10, choices=State.choices, default=State.NEW)
    # Ranked [{"id": recommendation id, "score": float}], best first.
    suggestions = models.JSONField(default=list, blank=True)
    evidence = models.ForeignKey(
        Evidence, null=True, blank=True, on_delete=models.SET_NULL, related_name="feed_entries"
    )

    objects = FeedEntryQuerySet.as_manager()

    class Meta:
        ordering = ["state", "-seen_at"]
        verbose_name_plural = "feed entries"
        constraints = [
            models.UniqueConstraint(fields=["source", "guid"], name="unique_entry_per_feed"),
        ]

    def __str__(self):
        return self.title or self.link or self.guid


def new_webhook_secret():
    return secrets.token_hex(32)


class Webhook(models.Model):
    """An endpoint that receives a signed JSON event for each status change or new evidence."""

    class Event(models.TextChoices):
        STATUS_CHANGE = "status_change", "Status change"
        EVIDENCE = "evidence", "New evidence"

    url = models.URLField("URL", max_length=500, help_text="HTTPS only.")
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(
        max_length=64,
        default=new_webhook_secret,
        help_text="Signs each delivery (HMAC-SHA256); share it with the receiver.",
    )
    sends_status_changes = models.BooleanField(default=True)
    sends_evidence = models.BooleanField(default=True)
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]

    def __str__(self):
        return self.description or self.url

    def clean(self):
        if not self.uses_allowed_scheme():
            raise ValidationError({"url": "Webhooks are delivered over HTTPS only."})

    def uses_allowed_scheme(self):
        """HTTPS, or plain HTTP to a host:port let through TRACKER_FETCH_ALLOW (tests, demos)."""
        from .fetching import allowed_exceptions

        parts = urlsplit(self.url)
        if parts.scheme == "https":
            return True
        try:
            port = parts.port or 80
        except ValueError:
            return False
        return parts.scheme == "http" and ((parts.hostname or "").lower(), port) in (
            allowed_exceptions()
        )


class WebhookDelivery(models.Model):
    """One event for one webhook: the delivery log, with its attempts."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=20, choices=Webhook.Event.choices)
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The admin's delivery log filtered by webhook and state.
            models.Index(fields=["webhook", "state"], name="delivery_state_idx"),
        ]

    def __str__(self):
        return f"{self.get_event_display()} to {self.webhook} ({self.get_state_display()})"


class SubscriptionQuerySet(models.QuerySet):
    def active(self):
        """Confirmed and not unsubscribed: the subscriptions that receive digests."""
        return self.filter(confirmed_at__isnull=False, unsubscribed_at__isnull=True)


class Subscription(models.Model):
    """Someone who receives a progress digest by email: weekly or monthly, on the documents
    and agencies they follow (nothing followed: everything). Double opt-in: no digest before
    `confirmed_at`."""

    class Frequency(models.TextChoices):
        WEEKLY = "weekly", _("Weekly")
        MONTHLY = "monthly", _("Monthly")

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        SPANISH = "es", "Español"

    email = models.EmailField(unique=True)
    language = models.CharField(max_length=5, choices=Language.choices, default=Language.ENGLISH)
    frequency = models.CharField(max_length=10, choices=Frequency.choices, default=Frequency.WEEKLY)
    documents = models.ManyToManyField(Document, blank=True, related_name="subscriptions")
    agencies = models.ManyToManyField(Agency, blank=True, related_name="subscriptions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="digest_subscriptions",
        help_text="A staff member's subscription: their digest adds unreviewed change alerts, "
        "broken sources and overdue reviews.",
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_period = models.CharField("last digest period", max_length=10, blank=True)
    last_sent_at = models.DateTimeField("last digest sent at", null=True, blank=True)
    # When sign-up last mailed this address: anyone can type it, so each mail is rationed
    # (digests.subscribe).
    confirmation_sent_at = models.DateTimeField(
        "confirmation link last sent at", null=True, blank=True, editable=False
    )
    already_subscribed_sent_at = models.DateTimeField(
        "“already subscribed” notice last sent at", null=True, blank=True, editable=False
    )

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # due_subscriptions(): confirmed, still subscribed, by frequency.
            models.Index(
                fields=["frequency", "confirmed_at"],
                condition=models.Q(unsubscribed_at__isnull=True),
                name="subscription_due_idx",
            ),
        ]

    def __str__(self):
        return self.email

    @property
    def is_active(self):
        """The same rule as SubscriptionQuerySet.active, for a subscription at hand."""
        return self.confirmed_at is not None and self.unsubscribed_at is None

    @property
    def is_staff_digest(self):
        return self.user_id is not None and self.user.is_staff


class DigestDelivery(models.Model):
    """One subscription's digest for one period: the row that makes sending happen once."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (nothing happened)"

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    period = models.CharField(max_length=10, help_text="2026-W48 (weekly) or 2026-11 (monthly).")
    period_start = models.DateField()
    period_end = models.DateField()
    # What the digest covers: from the previous digest's `covered_until` (or confirmation).
    covered_from = models.DateTimeField(null=True, blank=True)
    covered_until = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The claim of the sender holding it (state "sending"), so each sender knows its rows.
    claim = models.CharField(max_length=32, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    message_id = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "digest deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period"], name="unique_digest_per_period"
            ),
        ]
        indexes = [
            # The sender finds the rows it claimed.
            models.Index(fields=["claim"], name="digest_claim_idx"),
            # The admin's delivery log filtered by state.
            models.Index(fields=["state", "-created_at"], name="digest_state_idx"),
        ]

    def __str__(self):
        return f"Digest {self.period} to {self.subscription} ({self.get_state_display()})"


class ImportProposal(models.Model):
    """An import waiting for staff review: what the importer read in a document, as staff
    edit it. Nothing of it reaches the document until it is confirmed (tracker.proposals)."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting review"
        CONFIRMED = "confirmed", "Imported"
        DISCARDED = "discarded", "Discarded"

    code = models.CharField("document code", max_length=40)
    source_name = models.CharField(
        max_length=500, blank=True, help_text="The file or URL the document was read from."
    )
    format = models.CharField(max_length=20)
    document_is_new = models.BooleanField(default=False)
    # The document's metadata and the import's options, as save_import takes them.
    options = models.JSONField(default=dict)
    # The proposed recommendations in document order (importing.proposal_item), as edited.
    items = models.JSONField(default=list)
    # Stored recommendations this version no longer has: {pk, code, title}.
    withdrawn = models.JSONField(default=list)
    # What the document's recommendations were when proposed (importing.stored_fingerprint):
    # confirming over a document changed since then is refused.
    stored_fingerprint = models.CharField(max_length=64, editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    summary = models.CharField(max_length=300, blank=True)
    document = models.ForeignKey(
        Document,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="import_proposals",
        help_text="The document once imported.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "-created_at"], name="proposal_state_idx")]

    def __str__(self):
        return f"Import of {self.code} ({self.get_state_display().lower()})"


# Progress ledger: what the progress series needs, kept up to date as history is written
# (tracker.ledger). Derived data: plain ids rather than foreign keys, left out of backups and
# rebuilt from the history by `manage.py rebuild_progress`.


class ProgressShare(models.Model):
    """How one recommendation counts in one scope of the progress series: whether it is a
    member (counted by status), a root (progress averages the roots) and its share of its
    roots' progress (the sum over its roots of the product of weight fractions down to it)."""

    scope = models.CharField(max_length=60)
    recommendation_id = models.BigIntegerField()
    document_id = models.BigIntegerField()
    counted = models.BooleanField()
    root = models.BooleanField()
    share = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "recommendation_id"], name="progressshare_unique"
            ),
        ]
        indexes = [
            # ledger.record_change(): the scopes a recommendation counts in.
            models.Index(fields=["recommendation_id"], name="progressshare_rec_idx"),
            # ledger.refresh_documents(): what a document's recommendations count for.
            models.Index(fields=["document_id"], name="progressshare_doc_idx"),
        ]

    def __str__(self):
        return f"{self.scope}: {self.recommendation_id}"


class ProgressDelta(models.Model):
    """The change, in the month ending `month_end`, of one scope's count in a status and of
    the shares of its roots' progress held in that status."""

    scope = models.CharField(max_length=60)
    month_end = models.DateField()
    status = models.CharField(max_length=20, choices=Recommendation.Status.choices)
    count = models.IntegerField(default=0)
    share = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            # ledger's upserts add to the row of (scope, month, status); the series reads
            # one scope's rows up to a date through it.
            models.UniqueConstraint(
                fields=["scope", "month_end", "status"], name="progressdelta_unique"
            ),
        ]

    def __str__(self):
        return f"{self.scope} {self.month_end} {self.status}: {self.count:+}"


class ProgressScope(models.Model):
    """How many recommendations one scope of the progress series counts, and how many roots
    its progress averages, as the structure stands (ProgressShare, summed)."""

    scope = models.CharField(max_length=60, unique=True)
    members = models.IntegerField(default=0)
    roots = models.IntegerField(default=0)

    def __str__(self):
        return f"{self.scope}: {self.members} recommendations"


class ProgressStale(models.Model):
    """A document whose structure (parents, weights, publication, owners, themes) changed
    since its recommendations' shares were computed; the next read refreshes it."""

    document_id = models.BigIntegerField(unique=True)

    def __str__(self):
        return f"document {self.document_id}"
