"""The staff's workspace: documents, recommendations, owners, evidence and status history."""

from auditlog.mixins import AuditlogHistoryAdminMixin
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminDateWidget, FilteredSelectMultiple
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Prefetch
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask
from modeltranslation.admin import TranslationAdmin

from . import (
    digests,
    importing,
    monitoring,
    proposals,
    reading,
    texts,
    triage,
    webhooks,
    workspace,
)
from .audit import update_with_audit
from .links import link_url
from .models import (
    ASSESSMENTS,
    BROKEN_AFTER_FAILURES,
    CHECK_STATE_FIELDS,
    Agency,
    ChangeAlert,
    DigestDelivery,
    Document,
    Evidence,
    FeedEntry,
    ImportProposal,
    Ownership,
    Publisher,
    Recommendation,
    Source,
    SourceVersion,
    StatusChange,
    Subscription,
    Theme,
    Webhook,
    WebhookDelivery,
)
from .monitoring import watch_evidence_urls
from .progress import (
    attach_progress,
    progress_by_agency,
    progress_by_document,
    progress_of_recommendation,
)
from .views import moved_page
from .webhooks import announce_evidence

# What "Recorded by" says of history written without an account.
NO_ACCOUNT = "no account (a command or import)"


def recorded_by_name(change):
    return str(change.recorded_by) if change.recorded_by else NO_ACCOUNT


def describe_counts(summary):
    """'3 implemented · 2 in progress' for the statuses present, in vocabulary order."""
    labels = dict(Recommendation.Status.choices)
    parts = [f"{n} {labels[code].lower()}" for code, n in summary.counts.items() if n]
    return " · ".join(parts) or "no recommendations"


def report_queued(model_admin, request, queued, *, noun, done):
    """Tell staff what became of work sent to the queue: `done`, or the one outage answer
    (queueing.Queued.outage_message) when some of it waits for the queue."""
    if queued.kept:
        model_admin.message_user(request, queued.outage_message(noun), messages.WARNING)
    else:
        model_admin.message_user(request, done, messages.SUCCESS)


def object_for_action(model_admin, request, object_id, *, permission):
    """Return the object of a one-object staff action; 404 if missing, 403 unless the user
    may change it and also holds `permission`."""
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404(f"No such {model_admin.opts.verbose_name}.")
    if not model_admin.has_change_permission(request, obj) or not request.user.has_perm(permission):
        raise PermissionDenied
    return obj


def csv_response(recommendations, filename):
    response = HttpResponse(importing.export_csv(recommendations), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ProgressColumnsMixin:
    """Show counts by status and % progress on a changelist, computed for the page at once."""

    progress_function = None
    no_progress = "—"  # what the progress column says with nothing to count

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # Evaluated once here; the template reuses these rows.
        attach_progress(list(changelist.result_list), self.progress_function)
        return changelist

    @admin.display(description="By status")
    def counts_by_status(self, obj):
        return describe_counts(obj.progress_summary)

    @admin.display(description="Progress")
    def progress_percent(self, obj):
        # 0% would read as nothing done; with nothing to count there is no progress at all.
        if not obj.progress_summary.total:
            return self.no_progress
        return f"{obj.progress_summary.percent}%"


@admin.register(Publisher)
class PublisherAdmin(admin.ModelAdmin):
    list_display = ["name", "acronym", "document_count"]
    search_fields = ["name", "acronym"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(document_count=Count("documents"))

    @admin.display(description="Documents", ordering="document_count")
    def document_count(self, obj):
        return obj.document_count


@admin.register(Agency)
class AgencyAdmin(ProgressColumnsMixin, TranslationAdmin):
    progress_function = staticmethod(progress_by_agency)
    no_progress = "Nothing assigned"
    list_display = ["name", "acronym", "kind", "parent", "counts_by_status", "progress_percent"]
    list_filter = ["kind"]
    list_select_related = ["parent"]
    search_fields = ["name_en", "name_es", "acronym", "aliases"]
    autocomplete_fields = ["parent"]
    prepopulated_fields = {"slug": ["acronym"]}


@admin.register(Theme)
class ThemeAdmin(TranslationAdmin):
    list_display = ["name", "recommendation_count"]
    search_fields = ["name_en", "name_es"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(recommendation_count=Count("recommendations"))

    @admin.display(description="Recommendations", ordering="recommendation_count")
    def recommendation_count(self, obj):
        return obj.recommendation_count


@admin.register(Document)
class DocumentAdmin(ProgressColumnsMixin, TranslationAdmin):
    progress_function = staticmethod(progress_by_document)
    list_display = [
        "title",
        "code",
        "publisher",
        "kind",
        "published_on",
        "counts_by_status",
        "progress_percent",
    ]
    list_filter = ["kind", "publisher"]
    list_select_related = ["publisher"]
    search_fields = ["title_en", "title_es", "code", "author", "summary_en", "summary_es"]
    autocomplete_fields = ["publisher", "addressee"]
    date_hierarchy = "published_on"
    actions = ["export_recommendations_csv"]

    @admin.action(description="Export recommendations of selected documents as CSV")
    def export_recommendations_csv(self, request, queryset):
        # The documents as they now stand: a withdrawn row would come back on import.
        recommendations = Recommendation.objects.current().filter(document__in=queryset)
        return csv_response(recommendations, "recommendations.csv")

    def get_urls(self):
        upload = self.admin_site.admin_view(self.import_view)
        translation = self.admin_site.admin_view(self.import_translation_view)
        return [
            path("import/", upload, name="tracker_document_import"),
            path(
                "<path:object_id>/import-translation/",
                translation,
                name="tracker_document_import_translation",
            ),
            *super().get_urls(),
        ]

    def import_translation_view(self, request, object_id):
        """Upload the document's edition in another language: show how its recommendations
        pair with the stored ones (importing.attach_translation, a dry run), then save them as
        their translation once staff confirm; a structure that differs saves nothing."""
        document = object_for_action(
            self, request, object_id, permission="tracker.change_recommendation"
        )
        confirmed = request.method == "POST" and "confirm" in request.POST
        form = (ConfirmTranslationForm if confirmed else ImportTranslationForm)(
            request.POST or None, request.FILES or None, document=document
        )
        result = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                result = importing.attach_translation(
                    data["text"] if confirmed else data["file"].read(),
                    filename="" if confirmed else data["file"].name,
                    document_code=document.code,
                    language=data["language"],
                    fmt=data["fmt"] or None,
                    dry_run=not confirmed,
                )
            except importing.DocumentImportError as error:
                form.add_error(None, str(error))
            else:
                if confirmed:
                    self.message_user(
                        request,
                        f"Saved the {result.language} version of {len(result.pairs)} "
                        "recommendations.",
                        messages.SUCCESS,
                    )
                    return redirect(reverse("admin:tracker_document_change", args=[document.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import a translation of {document.code}",
            "opts": self.opts,
            "original": document,
            "form": form,
            "result": result,
            "confirm_form": result
            and ConfirmTranslationForm(
                initial={"text": result.text, "fmt": result.format, "language": result.language},
                document=document,
            ),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/tracker/document/import_translation.html", context)

    def import_view(self, request):
        """Upload a document (PDF, Word, HTML, text, Markdown or CSV): the importer reads it
        into a proposal for review, and saves nothing until staff confirm it there; a file
        the importer refuses is shown with its reason and nothing is kept."""
        if not request.user.has_perms(IMPORT_PERMISSIONS):
            raise PermissionDenied
        form = ImportDocumentForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                proposal = proposals.propose_import(
                    data["file"].read(),
                    filename=data["file"].name,
                    code=data["code"],
                    fmt=data["fmt"] or None,
                    title=data["title"] or None,
                    publisher=data["publisher"],
                    published_on=data["published_on"],
                    addressee=data["addressee"],
                    publish_new=not data["draft"],
                    created_by=request.user,
                )
            except importing.DocumentImportError as error:
                form.add_error("file", str(error))
            else:
                self.message_user(
                    request,
                    f"Read {len(proposal.items)} recommendations: review them, then confirm "
                    "the import. Nothing is saved until you do.",
                )
                return redirect(reverse("admin:tracker_importproposal_change", args=[proposal.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a document",
            "opts": self.opts,
            "form": form,
            "media": self.media + form.media,
            "max_megabytes": MAX_UPLOAD_BYTES // (1024 * 1024),
        }
        return TemplateResponse(request, "admin/tracker/document/import.html", context)


# The largest document the admin's upload accepts: the importer's own limit.
MAX_UPLOAD_BYTES = reading.MAX_DOCUMENT_BYTES
# What the upload accepts; the importer reads each of them (tracker.reading).
UPLOAD_SUFFIXES = (".pdf", ".docx", ".html", ".htm", ".txt", ".md", ".markdown", ".csv")
IMPORT_PERMISSIONS = proposals.IMPORT_PERMISSIONS


class ImportDocumentForm(forms.Form):
    file = forms.FileField(
        help_text="A report or an op-ed as PDF, Word (.docx), a saved web page (.html), text "
        "(.txt) or Markdown (.md), or a CSV (.csv); text files in UTF-8.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(UPLOAD_SUFFIXES)}),
    )
    code = forms.CharField(
        max_length=40,
        help_text="The document's code, e.g. WRC-2024; importing into an existing code "
        "updates its recommendations in place.",
    )
    title = forms.CharField(
        max_length=300, required=False, help_text="Default: the document's first heading."
    )
    fmt = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[("", "Detect from the file"), *((f, f) for f in importing.FORMATS)],
    )
    publisher = forms.ModelChoiceField(
        queryset=Publisher.objects.all(), required=False, help_text="Needed for a new document."
    )
    published_on = forms.DateField(required=False, widget=AdminDateWidget)
    addressee = forms.CharField(
        max_length=200,
        required=False,
        help_text="Whom the document addresses, by acronym or name (e.g. WH, Congress, DHS): "
        "the lead where a recommendation names none. Default: the agency the text most often "
        "addresses.",
    )
    draft = forms.BooleanField(required=False, label="Leave new recommendations as drafts")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(UPLOAD_SUFFIXES):
            raise ValidationError(
                f"Upload a {', '.join(UPLOAD_SUFFIXES[:-1])} or {UPLOAD_SUFFIXES[-1]} file."
            )
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"This file is {upload.size / 1024 / 1024:.1f} MB; documents are limited to "
                f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
            )
        return upload


class ImportTranslationForm(forms.Form):
    """The document's edition in another language, to pair with its recommendations."""

    file = forms.FileField(
        help_text="The edition in the other language, in the same formats as an import; its "
        "numbered sections and listed items must match the document's.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(UPLOAD_SUFFIXES)}),
    )
    language = forms.ChoiceField(choices=settings.LANGUAGES)
    fmt = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[("", "Detect from the file"), *((f, f) for f in importing.FORMATS)],
    )

    def __init__(self, *args, document, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [
            (code, name) for code, name in settings.LANGUAGES if code != document.original_language
        ]

    clean_file = ImportDocumentForm.clean_file


class ConfirmTranslationForm(forms.Form):
    """The edition as read on the review page, saved when staff confirm it."""

    text = forms.CharField(widget=forms.HiddenInput, strip=False)
    fmt = forms.CharField(widget=forms.HiddenInput, required=False)
    language = forms.ChoiceField(choices=settings.LANGUAGES, widget=forms.HiddenInput)

    def __init__(self, *args, document, **kwargs):
        super().__init__(*args, **kwargs)


class ProposalItemForm(forms.Form):
    """One proposed recommendation on the review page: what staff may change about it (the
    page explains each field once, above the items)."""

    keep = forms.BooleanField(required=False, label="Keep")
    code = forms.CharField(max_length=40)
    parent_key = forms.ChoiceField(label="Under", required=False)
    merge_into = forms.ChoiceField(label="Merge into", required=False)
    title = forms.CharField(max_length=300, required=False)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 1}))
    lead = forms.CharField(
        label="Lead agency",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"list": "agency-names"}),
    )
    supporting = forms.CharField(
        label="Supporting agencies",
        max_length=1000,
        required=False,
        widget=forms.TextInput(attrs={"list": "agency-names"}),
    )

    def __init__(self, *args, choices, index, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parent_key"].choices = [("", "— the top level —"), *choices]
        self.fields["merge_into"].choices = [("", "— no, keep it separate —"), *choices]
        self.index = index

    def agency(self, name):
        agency = self.index.find(name)
        if agency is None:
            raise ValidationError(
                f"No agency {name!r} in the directory: choose one from Agencies, or add it "
                "there first."
            )
        return importing.agency_label(agency)

    def clean_lead(self):
        name = self.cleaned_data["lead"].strip()
        return self.agency(name) if name else ""

    def clean_supporting(self):
        names = [name.strip() for name in self.cleaned_data["supporting"].split(";")]
        return list(dict.fromkeys(self.agency(name) for name in names if name))

    def clean(self):
        cleaned = super().clean()
        key = self.initial.get("key")
        if key and key in (cleaned.get("parent_key"), cleaned.get("merge_into")):
            raise ValidationError("An item cannot sit under, or merge into, itself.")
        return cleaned


ProposalItemFormSet = forms.formset_factory(ProposalItemForm, extra=0)
REVIEWED_FIELDS = [name for name in ProposalItemForm.base_fields]


def proposal_choices(items):
    return [(item["key"], f"{item['code']} {item['title'][:60]}") for item in items]


def review_rows(proposal, formset):
    """Each item with its form and what the reviewer should see: its depth in the tree, what
    becomes of the stored recommendation it continues (moved, reworded word by word)."""
    depth = {}
    rows = []
    for item, form in zip(proposal.items, formset.forms, strict=True):
        depth[item["key"]] = depth.get(item["parent_key"], -1) + 1 if item["parent_key"] else 0
        stored = item["stored"]
        rows.append(
            {
                "item": item,
                "form": form,
                "depth": min(depth[item["key"]], 4),
                "changes": (
                    importing.word_changes(stored["text"], item["text"])
                    if stored and stored["text"] != item["text"]
                    else None
                ),
                "moved_from": stored["code"] if stored and stored["code"] != item["code"] else "",
            }
        )
    return rows


@admin.register(ImportProposal)
class ImportProposalAdmin(admin.ModelAdmin):
    """Imports awaiting review: the upload page and `import_document --review` make them; the
    change page is the review, where staff edit the items and confirm or discard."""

    list_display = ["__str__", "source_name", "state", "item_count", "created_by", "created_at"]
    list_filter = ["state"]
    list_select_related = ["created_by"]
    search_fields = ["code", "source_name"]
    date_hierarchy = "created_at"

    @admin.display(description="Recommendations")
    def item_count(self, obj):
        return len(obj.items)

    def has_add_permission(self, request):
        return False  # proposals come from an upload or the command

    def has_view_permission(self, request, obj=None):
        return request.user.has_perms(IMPORT_PERMISSIONS)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perms(IMPORT_PERMISSIONS)

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perms(IMPORT_PERMISSIONS)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        proposal = self.get_object(request, unquote(object_id))
        if proposal is None:
            raise Http404("No such import proposal.")
        if not self.has_change_permission(request, proposal):
            raise PermissionDenied
        pending = proposal.state == ImportProposal.State.PENDING
        index = importing.AgencyIndex(Agency.objects.all())
        form_kwargs = {"choices": proposal_choices(proposal.items), "index": index}
        initial = [
            item | {"supporting": "; ".join(item["supporting"]), "lead": item["lead"] or ""}
            for item in proposal.items
        ]
        data = request.POST if request.method == "POST" and pending else None
        formset = ProposalItemFormSet(data, initial=initial, form_kwargs=form_kwargs)
        if data is not None:
            response = self.review_post(request, proposal, formset)
            if response is not None:
                return response
        if not pending:
            for form in formset.forms:
                for field in form.fields.values():
                    field.disabled = True
        context = {
            **self.admin_site.each_context(request),
            "title": f"Review the import of {proposal.code}",
            "opts": self.opts,
            "original": proposal,
            "pending": pending,
            "formset": formset,
            "rows": review_rows(proposal, formset),
            "agency_names": sorted(importing.agency_label(a) for a in index.by_pk.values()),
            "withdrawn": proposal.withdrawn,
            "flag_count": sum(bool(item["flags"]) for item in proposal.items),
            "document": Document.objects.filter(code=proposal.code).first(),
            "media": self.media + formset.media,
        }
        return TemplateResponse(request, "admin/tracker/importproposal/review.html", context)

    def review_post(self, request, proposal, formset):
        """Save the edits; then confirm or discard, as the button pressed says. Return the
        response, or None to show the page again with what went wrong."""
        if "_discard" in request.POST:
            try:
                proposals.discard_proposal(proposal, user=request.user)
            except importing.DocumentImportError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"Discarded the import of {proposal.code}.")
            return redirect(reverse("admin:tracker_importproposal_changelist"))
        if len(formset.forms) != len(proposal.items):
            self.message_user(
                request, "The page was out of date: here it is again.", messages.ERROR
            )
            return redirect(request.path)
        if not formset.is_valid():
            self.message_user(request, "Please correct the errors below.", messages.ERROR)
            return None
        edits = {
            form.initial["key"]: {name: form.cleaned_data[name] for name in REVIEWED_FIELDS}
            for form in formset.forms
        }
        proposals.update_items(proposal, edits)
        if "_confirm" not in request.POST:
            self.message_user(request, "Saved your changes; the import still awaits confirmation.")
            return redirect(request.path)
        try:
            result = proposals.confirm_proposal(proposal, user=request.user)
        except proposals.ProposalError as error:
            for problem in error.problems:
                self.message_user(request, problem, messages.ERROR)
            return None
        except importing.DocumentImportError as error:
            self.message_user(request, str(error), messages.ERROR)
            return None
        document = result.document
        for flag in result.flags:
            self.message_user(request, f"To review: {flag}", messages.WARNING)
        self.log_change(request, document, f"Imported after review: {result.summary()}")
        self.message_user(
            request, f"Imported {document.code}: {result.summary()}", messages.SUCCESS
        )
        return redirect(reverse("admin:tracker_document_change", args=[document.pk]))


class OwnershipFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        leads = [
            form
            for form in self.forms
            if form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("role") == Ownership.Role.LEAD
        ]
        if len(leads) > 1:
            raise ValidationError(
                "A recommendation has one lead agency: make the others supporting."
            )

    def save_existing_objects(self, commit=True):
        # Save demotions before promotions, so that swapping the lead never holds two at once.
        count = self.initial_form_count()
        self.forms[:count] = sorted(
            self.forms[:count],
            key=lambda form: (form.cleaned_data or {}).get("role") == Ownership.Role.LEAD,
        )
        return super().save_existing_objects(commit)


class OwnershipInline(admin.TabularInline):
    model = Ownership
    formset = OwnershipFormSet
    extra = 0
    autocomplete_fields = ["agency"]


class EvidenceLinkInline(admin.TabularInline):
    model = Evidence.recommendations.through
    extra = 0
    autocomplete_fields = ["evidence"]
    verbose_name = "linked evidence"
    verbose_name_plural = "linked evidence"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("evidence")


class StatusHistoryInline(admin.TabularInline):
    """The append-only history, newest first: read here, added through "Record status change"."""

    model = StatusChange
    extra = 0
    fields = [
        "effective_on",
        "status",
        "rationale",
        "evidence_titles",
        "recorded_by_name",
        "recorded_at",
    ]
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    verbose_name_plural = "status history (newest first)"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("recorded_by")
            .prefetch_related("evidence")
            .latest_first()
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Evidence")
    def evidence_titles(self, change):
        return "; ".join(str(item) for item in change.evidence.all()) or "—"

    @admin.display(description="Recorded by")
    def recorded_by_name(self, change):
        return recorded_by_name(change)


class OwnerAgencyFilter(admin.SimpleListFilter):
    title = "owner agency"
    parameter_name = "agency"

    def lookups(self, request, model_admin):
        return [(agency.pk, agency.display_name) for agency in Agency.objects.all()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(owners=self.value()).distinct()
        return queryset


class ReviewDueFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.current().review_overdue()
        return queryset


class LeadAgencyFilter(admin.SimpleListFilter):
    """By lead agency ("none": recommendations without one), as the start page groups
    overdue reviews."""

    title = "lead agency"
    parameter_name = "lead"

    def lookups(self, request, model_admin):
        agencies = Agency.objects.filter(ownerships__role=Ownership.Role.LEAD).distinct()
        return [*((agency.pk, agency.display_name) for agency in agencies), ("none", "None")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.exclude(ownerships__role=Ownership.Role.LEAD)
        if self.value():
            return queryset.filter(
                ownerships__role=Ownership.Role.LEAD, ownerships__agency=self.value()
            )
        return queryset


class StatusChangeForm(forms.Form):
    status = forms.ChoiceField(choices=[(s.value, s.label) for s in ASSESSMENTS])
    effective_on = forms.DateField(
        initial=timezone.localdate,
        widget=AdminDateWidget,
        help_text="When it happened in the world; may be in the past, never in the future.",
    )
    evidence = forms.ModelMultipleChoiceField(
        queryset=Evidence.objects.all(),
        required=False,
        widget=FilteredSelectMultiple("evidence", is_stacked=False),
        help_text="The evidence behind the change; it is linked to the recommendation too.",
    )
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        required=False,
        help_text="Required when no evidence is cited.",
    )

    def clean(self):
        """Show every reason the change cannot be recorded beside its field, together with
        the fields' own errors (the rules are record_status's)."""
        cleaned = super().clean()
        problems = Recommendation.status_change_problems(
            cleaned.get("status"),
            effective_on=cleaned.get("effective_on"),
            evidence=cleaned.get("evidence") or [],
            rationale=cleaned.get("rationale", ""),
        )
        for name, problem in problems.items():
            if name not in self.errors:
                self.add_error(name, problem)
        return cleaned


@admin.register(Recommendation)
class RecommendationAdmin(AuditlogHistoryAdminMixin, TranslationAdmin):
    # Fits a 1366 px screen beside the filters: the code names the document already.
    list_display = ["code", "title", "status", "lead_agency", "since", "is_published"]
    list_display_links = ["code", "title"]
    list_filter = [
        "status",
        ReviewDueFilter,
        "document",
        LeadAgencyFilter,
        OwnerAgencyFilter,
        "themes",
        "is_published",
        ("withdrawn_at", admin.EmptyFieldListFilter),
        "is_priority",
        "addressed_to",
    ]
    list_select_related = ["document"]
    search_fields = ["code", "title_en", "title_es", "text_en", "text_es", "note_en", "note_es"]
    autocomplete_fields = ["document", "parent"]
    filter_horizontal = ["themes"]
    readonly_fields = ["status", "status_changed_on", "progress", "review_due_on", "withdrawn_at"]
    fieldsets = [
        (None, {"fields": ["document", "code", "parent", "position", "section_title"]}),
        ("Text", {"fields": ["title", "text", "note"]}),
        ("Addressed to", {"fields": ["addressed_to", "themes"]}),
        (
            "Status",
            {"fields": ["status", "status_changed_on", "progress", "weight", "is_priority"]},
        ),
        ("Review", {"fields": ["review_interval_days", "last_reviewed_on", "review_due_on"]}),
        ("Publication", {"fields": ["is_published", "withdrawn_at"]}),
    ]
    inlines = [OwnershipInline, StatusHistoryInline, EvidenceLinkInline]
    actions = ["export_csv", "publish", "unpublish", "mark_reviewed"]

    def view_on_site(self, obj):
        """Link "View on site" to the public page, which drafts do not have."""
        return obj.get_absolute_url() if obj.is_public else None

    def get_queryset(self, request):
        leads = Ownership.objects.filter(role=Ownership.Role.LEAD).select_related("agency")
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("ownerships", queryset=leads, to_attr="lead_ownerships"))
        )

    def get_urls(self):
        record_status = self.admin_site.admin_view(self.record_status_view)
        return [
            path(
                "<path:object_id>/record-status/",
                record_status,
                name="tracker_recommendation_record_status",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Since", ordering="status_changed_on")
    def since(self, obj):
        return obj.status_changed_on

    @admin.display(description="Lead agency")
    def lead_agency(self, obj):
        leads = getattr(obj, "lead_ownerships", None)
        if leads is None:
            leads = obj.ownerships.filter(role=Ownership.Role.LEAD).select_related("agency")
        return leads[0].agency.display_name if leads else "—"

    @admin.display(description="Progress")
    def progress(self, obj):
        if obj.pk is None:
            return "—"
        return f"{round(progress_of_recommendation(obj) * 100)}%"

    @admin.display(description="Next review due")
    def review_due_on(self, obj):
        return obj.review_due_on if obj.pk else "—"

    @admin.action(description="Export selected recommendations as CSV")
    def export_csv(self, request, queryset):
        return csv_response(queryset, "recommendations.csv")

    @admin.action(description="Publish selected recommendations", permissions=["change"])
    def publish(self, request, queryset):
        count = update_with_audit(
            queryset,
            {"is_published": True},
            actor=request.user,
            unlogged={"updated_at": timezone.now()},
        )
        self.message_user(request, f"{count} recommendation(s) published.", messages.SUCCESS)

    @admin.action(
        description="Unpublish selected recommendations (back to draft)", permissions=["change"]
    )
    def unpublish(self, request, queryset):
        count = update_with_audit(
            queryset,
            {"is_published": False},
            actor=request.user,
            unlogged={"updated_at": timezone.now()},
        )
        self.message_user(request, f"{count} recommendation(s) are drafts again.", messages.SUCCESS)

    @admin.action(description="Mark selected as re-verified today", permissions=["change"])
    def mark_reviewed(self, request, queryset):
        count = update_with_audit(
            queryset, {"last_reviewed_on": timezone.localdate()}, actor=request.user
        )
        self.message_user(request, f"{count} recommendation(s) marked re-verified.")

    def record_status_view(self, request, object_id):
        """Append a status change: the admin's one way to write history."""
        recommendation = object_for_action(
            self, request, object_id, permission="tracker.add_statuschange"
        )
        form = StatusChangeForm(request.POST or None, initial={"status": recommendation.status})
        if request.method == "POST" and form.is_valid():
            try:
                change = recommendation.record_status(
                    form.cleaned_data["status"],
                    effective_on=form.cleaned_data["effective_on"],
                    evidence=form.cleaned_data["evidence"],
                    rationale=form.cleaned_data["rationale"],
                    by=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.log_change(request, recommendation, f"Recorded status change: {change}")
                self.message_user(request, f"Recorded: {change}.", messages.SUCCESS)
                return redirect(reverse("admin:tracker_recommendation_change", args=[object_id]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Record status change for {recommendation.code}",
            "opts": self.opts,
            "original": recommendation,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/tracker/recommendation/record_status.html", context)


@admin.register(StatusChange)
class StatusChangeAdmin(AuditlogHistoryAdminMixin, TranslationAdmin):
    """Read-only but for the rationale's translation: history is appended from a
    recommendation's "Record status change" page."""

    list_display = ["recommendation", "status", "effective_on", "recorded_by_name", "recorded_at"]
    fields = [
        "recommendation",
        "status",
        "effective_on",
        "rationale",
        "cited_evidence",
        "recorded_by_name",
        "recorded_at",
    ]
    readonly_fields = fields
    list_filter = ["status", "recommendation__document"]
    list_select_related = ["recommendation", "recorded_by"]
    search_fields = ["recommendation__code", "rationale_en", "rationale_es"]
    date_hierarchy = "effective_on"

    def get_urls(self):
        moved = self.admin_site.admin_view(self.moved_view)
        to_translate = self.admin_site.admin_view(self.to_translate_view)
        return [
            path("moved/", moved, name="tracker_statuschange_moved"),
            path("to-translate/", to_translate, name="tracker_texts_to_translate"),
            path(
                "<path:object_id>/translate/",
                self.admin_site.admin_view(self.translate_view),
                name="tracker_statuschange_translate",
            ),
            *super().get_urls(),
        ]

    def translate_view(self, request, object_id):
        """Give the rationale in the languages it was not recorded in: the one change to
        history allowed, since the record itself stays as it was (audited)."""
        change = self.get_object(request, unquote(object_id))
        if change is None:
            raise Http404("No such status change.")
        if not request.user.has_perm("tracker.add_statuschange"):
            raise PermissionDenied
        form = RationaleTranslationForm(
            request.POST or None, change=change, initial=texts.versions(change, "rationale")
        )
        if request.method == "POST" and form.is_valid():
            update_with_audit(
                StatusChange.objects.filter(pk=change.pk), form.cleaned_data, actor=request.user
            )
            self.message_user(request, f"Rationale translated: {change}.", messages.SUCCESS)
            return redirect(reverse("admin:tracker_texts_to_translate"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Translate the rationale of {change}",
            "opts": self.opts,
            "original": change,
            "recorded_in": form.recorded_in,
            "recorded": getattr(change, f"rationale_{form.recorded_in}", ""),
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/tracker/statuschange/translate.html", context)

    def to_translate_view(self, request):
        """Texts people read that staff gave in one language but not the other, with links
        to where to translate them."""
        if not request.user.has_perm("tracker.view_recommendation"):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Texts to translate",
            "opts": self.opts,
            "groups": [
                {
                    "name": model._meta.verbose_name_plural.capitalize(),
                    "rows": [
                        {
                            "object": obj,
                            "url": translation_url(obj),
                            "missing": missing,
                        }
                        for obj, missing in rows
                    ],
                }
                for model, rows in texts.untranslated_by_model(TRANSLATED_MODELS)
            ],
        }
        return TemplateResponse(request, "admin/tracker/texts_to_translate.html", context)

    def moved_view(self, request):
        """What moved, as on the public page (tracker.changes), drafts included for staff
        who may see them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            **moved_page(request, user=request.user),
            "title": "What moved",
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/tracker/statuschange/moved.html", context)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Recorded by", ordering="recorded_by")
    def recorded_by_name(self, change):
        return recorded_by_name(change)

    @admin.display(description="Evidence")
    def cited_evidence(self, change):
        return "; ".join(str(item) for item in change.evidence.all()) or "—"


class OutletFilter(admin.SimpleListFilter):
    """The outlets evidence names (evidence without one is not a choice: it has no name to
    read out)."""

    title = "outlet"
    parameter_name = "outlet"

    def lookups(self, request, model_admin):
        outlets = Evidence.objects.exclude(outlet="").order_by("outlet")
        return [(name, name) for name in outlets.values_list("outlet", flat=True).distinct()]

    def queryset(self, request, queryset):
        return queryset.filter(outlet=self.value()) if self.value() else queryset


class RationaleTranslationForm(forms.Form):
    """The rationale in each language but the one it was recorded in, which is shown."""

    def __init__(self, *args, change, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorded_in = texts.recorded_language(change, "rationale")
        for code, name in settings.LANGUAGES:
            if code != self.recorded_in:
                self.fields[f"rationale_{code}"] = forms.CharField(
                    label=f"Rationale ({name})", widget=forms.Textarea, required=False
                )


def translation_url(obj):
    """Where staff give the missing version of `obj`'s texts: its change page, or for
    append-only history the rationale's translation page."""
    view = "translate" if isinstance(obj, StatusChange) else "change"
    return reverse(f"admin:tracker_{obj._meta.model_name}_{view}", args=[obj.pk])


# The models whose texts people read, as tracker/translation.py registers them.
TRANSLATED_MODELS = [Document, Recommendation, Agency, Theme, StatusChange, Evidence]


@admin.register(Evidence)
class EvidenceAdmin(AuditlogHistoryAdminMixin, TranslationAdmin):
    list_display = ["title", "outlet", "published_on", "kind", "effect", "link"]
    list_filter = ["kind", "effect", OutletFilter]
    search_fields = ["title_en", "title_es", "outlet", "excerpt_en", "excerpt_es", "url"]
    autocomplete_fields = ["recommendations"]
    date_hierarchy = "published_on"
    actions = ["watch_urls"]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:  # announced once its recommendations are linked
            announce_evidence(form.instance)

    def has_watch_permission(self, request):
        return request.user.has_perm("tracker.add_source")

    @admin.action(
        description="Watch the URLs of selected evidence as sources", permissions=["watch"]
    )
    def watch_urls(self, request, queryset):
        created = watch_evidence_urls(queryset.prefetch_related("recommendations"))
        self.message_user(request, f"{created} new source(s) watched.", messages.SUCCESS)

    @admin.display(description="URL")
    def link(self, obj):
        url = link_url(obj.url)
        if not url:
            return "—"
        return format_html('<a href="{}" rel="noopener noreferrer">{}</a>', url, "open")


@admin.register(Ownership)
class OwnershipAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    list_display = ["recommendation", "agency", "role"]
    list_filter = ["role", "agency"]
    list_select_related = ["recommendation", "agency"]
    search_fields = ["recommendation__code", "agency__name", "agency__acronym"]
    autocomplete_fields = ["recommendation", "agency"]


def render_diff(diff):
    """The diff as HTML lines, additions and removals marked for the eye and for screen readers."""
    rows = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "@@")):
            rows.append(format_html('<span class="diff-meta">{}</span>', line))
        elif line.startswith("+"):
            rows.append(format_html('<ins class="diff-add">{}</ins>', line))
        elif line.startswith("-"):
            rows.append(format_html('<del class="diff-del">{}</del>', line))
        else:
            rows.append(format_html("<span>{}</span>", line))
    return format_html(
        '<pre class="tracker-diff">{}</pre>', format_html_join("\n", "{}", ((r,) for r in rows))
    )


class BrokenSourceFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [("broken", "Broken"), ("failing", "Failing"), ("ok", "OK")]

    def queryset(self, request, queryset):
        if self.value() == "broken":
            return queryset.filter(consecutive_failures__gte=BROKEN_AFTER_FAILURES)
        if self.value() == "failing":
            return queryset.filter(consecutive_failures__gt=0)
        if self.value() == "ok":
            return queryset.filter(consecutive_failures=0)
        return queryset


class SourceVersionInline(admin.TabularInline):
    model = SourceVersion
    extra = 0
    fields = ["fetched_at", "title", "http_status", "content_hash"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Source)
class SourceAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "kind",
        "is_active",
        "healthy",
        "last_checked_at",
        "last_changed_at",
        "next_check_at",
    ]
    list_filter = ["kind", "is_active", BrokenSourceFilter]
    search_fields = ["url", "title"]
    autocomplete_fields = ["recommendations", "evidence"]
    # The monitoring state, but for the schedule (next_check_at), which staff may move.
    readonly_fields = [
        name for name in CHECK_STATE_FIELDS if not Source._meta.get_field(name).editable
    ]
    inlines = [SourceVersionInline]
    actions = ["check_now"]

    @admin.display(description="Healthy", boolean=True)
    def healthy(self, source):
        return not source.is_broken

    @admin.action(description="Check selected sources now", permissions=["change"])
    def check_now(self, request, queryset):
        queued = monitoring.check_now(queryset.values_list("pk", flat=True))
        report_queued(
            self,
            request,
            queued,
            noun="source check(s)",
            done=f"Checking {queued.sent} source(s); changes appear in the change alerts.",
        )


@admin.register(SourceVersion)
class SourceVersionAdmin(admin.ModelAdmin):
    """The kept copies: read-only."""

    list_display = ["source", "fetched_at", "title", "http_status"]
    list_filter = ["source"]
    list_select_related = ["source"]
    search_fields = ["title", "text", "source__url"]
    date_hierarchy = "fetched_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReviewedFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "reviewed"

    def lookups(self, request, model_admin):
        return [("no", "Unreviewed"), ("yes", "Reviewed")]

    def queryset(self, request, queryset):
        if self.value() in {"no", "yes"}:
            return queryset.filter(reviewed_at__isnull=self.value() == "no")
        return queryset


class AcceptAlertForm(forms.Form):
    title = forms.CharField(max_length=300)
    url = forms.URLField(label="URL", max_length=500, assume_scheme="https")
    outlet = forms.CharField(max_length=200, required=False)
    published_on = forms.DateField(widget=AdminDateWidget, initial=timezone.localdate)
    kind = forms.ChoiceField(choices=Evidence.Kind.choices)
    effect = forms.ChoiceField(choices=Evidence.Effect.choices)
    excerpt = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), required=False)
    recommendations = forms.ModelMultipleChoiceField(
        queryset=Recommendation.objects.all(),
        widget=FilteredSelectMultiple("recommendations", is_stacked=False),
    )
    status = forms.ChoiceField(
        choices=[("", "— leave status as it is —"), *Recommendation.Status.choices],
        required=False,
        help_text="Records this status on each chosen recommendation, citing the evidence.",
    )
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), required=False
    )


def report_triage(request, triaged, done_message):
    """Tell staff what a triage action did, and what someone else had handled first, in
    the words the API answers with (see `tracker.triage`)."""
    if triaged.done or not triaged.refused:
        messages.success(request, done_message)
    if triaged.refused:
        messages.warning(request, triaged.refused)


@admin.register(ChangeAlert)
class ChangeAlertAdmin(admin.ModelAdmin):
    """The staff inbox: one alert per change seen on a source, unreviewed first."""

    class Media:
        css = {"all": ["tracker/admin.css"]}

    list_display = [
        "__str__",
        "diff_preview",
        "linked_recommendations",
        "is_reviewed_flag",
        "created_at",
    ]
    list_filter = [ReviewedFilter, "source"]
    list_select_related = ["source"]
    search_fields = ["source__url", "source__title", "diff"]
    readonly_fields = [
        "source",
        "version",
        "previous_version",
        "linked_recommendations",
        "diff_html",
        "created_at",
        "reviewed_at",
        "reviewed_by",
        "evidence",
    ]
    fields = readonly_fields
    actions = ["mark_reviewed"]

    def get_queryset(self, request):
        codes = Recommendation.objects.only("pk", "code")
        return (
            super()
            .get_queryset(request)
            .inbox_order()
            .prefetch_related(Prefetch("source__recommendations", queryset=codes))
        )

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        accept = self.admin_site.admin_view(self.accept_view)
        return [
            path("<path:object_id>/accept/", accept, name="tracker_changealert_accept"),
            *super().get_urls(),
        ]

    @admin.display(description="Recommendations")
    def linked_recommendations(self, alert):
        return ", ".join(r.code for r in alert.source.recommendations.all()) or "—"

    @admin.display(description="Reviewed", boolean=True, ordering="reviewed_at")
    def is_reviewed_flag(self, alert):
        return alert.is_reviewed

    @admin.display(description="What changed")
    def diff_html(self, alert):
        return render_diff(alert.diff)

    @admin.display(description="What changed")
    def diff_preview(self, alert):
        lines = workspace.changed_lines(alert.diff, limit=3)
        return render_to_string("admin/tracker/diff_preview.html", {"lines": lines})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # "Change alert", not the admin's "Change change alert".
        extra_context = {"title": "Change alert", **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Mark selected alerts reviewed", permissions=["change"])
    def mark_reviewed(self, request, queryset):
        triaged = triage.review_alerts(queryset.values_list("pk", flat=True), by=request.user)
        report_triage(request, triaged, f"{triaged.done} alert(s) marked reviewed.")

    def accept_view(self, request, object_id):
        """Turn an alert into evidence (and a status change) in one form."""
        alert = object_for_action(self, request, object_id, permission="tracker.add_evidence")
        initial = {
            "title": alert.version.title or alert.source.title or alert.source.url,
            "url": alert.version.url,
            "outlet": alert.source.title,
            "published_on": timezone.localdate(),
            "kind": Evidence.Kind.OFFICIAL_ANNOUNCEMENT,
            "effect": Evidence.Effect.ADVANCES,
            "excerpt": triage.added_lines(alert.diff),
            "recommendations": list(alert.source.recommendations.all()),
        }
        form = AcceptAlertForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if data["status"] and not request.user.has_perm("tracker.add_statuschange"):
                raise PermissionDenied
            fields = {
                name: data[name]
                for name in ["title", "url", "outlet", "published_on", "kind", "effect", "excerpt"]
            }
            try:
                evidence = triage.accept_alert(
                    alert,
                    evidence_fields=fields,
                    recommendations=list(data["recommendations"]),
                    status=data["status"],
                    rationale=data["rationale"],
                    by=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(request, f"Recorded evidence: {evidence}.", messages.SUCCESS)
                return redirect(reverse("admin:tracker_changealert_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Turn this change into evidence: {alert.source}",
            "opts": self.opts,
            "original": alert,
            "diff": render_diff(alert.diff),
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/tracker/changealert/accept.html", context)


class AcceptEntryForm(forms.Form):
    recommendations = forms.ModelMultipleChoiceField(
        queryset=Recommendation.objects.all(),
        widget=FilteredSelectMultiple("recommendations", is_stacked=False),
    )
    kind = forms.ChoiceField(choices=Evidence.Kind.choices, initial=Evidence.Kind.NEWS_REPORT)
    effect = forms.ChoiceField(choices=Evidence.Effect.choices, initial=Evidence.Effect.CONTEXT)


def attach_suggested_codes(entries):
    """Give each feed entry `suggested_codes`, the codes of its suggestions, in one query."""
    wanted = {item["id"] for entry in entries for item in entry.suggestions}
    codes = dict(Recommendation.objects.filter(pk__in=wanted).values_list("pk", "code"))
    for entry in entries:
        entry.suggested_codes = [codes[i["id"]] for i in entry.suggestions if i["id"] in codes]


@admin.register(FeedEntry)
class FeedEntryAdmin(admin.ModelAdmin):
    """Candidate evidence from watched feeds, with suggested recommendations."""

    list_display = ["title", "source", "published_at", "state", "suggested_codes"]
    list_filter = ["state", "source"]
    list_select_related = ["source"]
    search_fields = ["title", "summary", "link"]
    readonly_fields = [
        "source",
        "guid",
        "link",
        "title",
        "summary",
        "published_at",
        "seen_at",
        "state",
        "suggested_codes",
        "evidence",
    ]
    fields = readonly_fields
    actions = ["dismiss"]

    def has_add_permission(self, request):
        return False

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        attach_suggested_codes(list(changelist.result_list))  # one query for the page
        return changelist

    def get_urls(self):
        accept = self.admin_site.admin_view(self.accept_view)
        return [
            path("<path:object_id>/accept/", accept, name="tracker_feedentry_accept"),
            *super().get_urls(),
        ]

    @admin.display(description="Suggested recommendations")
    def suggested_codes(self, entry):
        if not hasattr(entry, "suggested_codes"):
            attach_suggested_codes([entry])
        return ", ".join(entry.suggested_codes) or "—"

    @admin.action(description="Dismiss selected entries", permissions=["change"])
    def dismiss(self, request, queryset):
        triaged = triage.dismiss_entries(queryset.values_list("pk", flat=True))
        report_triage(request, triaged, f"{triaged.done} entr(y/ies) dismissed.")

    def accept_view(self, request, object_id):
        entry = object_for_action(self, request, object_id, permission="tracker.add_evidence")
        suggested = [item["id"] for item in entry.suggestions]
        form = AcceptEntryForm(request.POST or None, initial={"recommendations": suggested})
        if request.method == "POST" and form.is_valid():
            try:
                evidence = triage.accept_feed_entry(
                    entry,
                    recommendations=list(form.cleaned_data["recommendations"]),
                    kind=form.cleaned_data["kind"],
                    effect=form.cleaned_data["effect"],
                    by=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(request, f"Recorded evidence: {evidence}.", messages.SUCCESS)
                return redirect(reverse("admin:tracker_feedentry_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Accept as evidence: {entry}",
            "opts": self.opts,
            "original": entry,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/tracker/feedentry/accept.html", context)


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    fields = ["created_at", "event", "state", "attempts", "last_status_code", "last_error"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    max_num = 0
    verbose_name_plural = "recent deliveries"

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-created_at", "-pk")


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["__str__", "url", "is_active", "sends_status_changes", "sends_evidence"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    inlines = [WebhookDeliveryInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read-only, with a retry for failures."""

    list_display = ["created_at", "webhook", "event", "state", "attempts", "last_status_code"]
    list_filter = ["state", "event", "webhook"]
    list_select_related = ["webhook"]
    readonly_fields = [
        "webhook",
        "event",
        "payload",
        "state",
        "attempts",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    ]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send selected failed deliveries again", permissions=["change"])
    def retry(self, request, queryset):
        queued = webhooks.retry_deliveries(queryset)
        report_queued(
            self,
            request,
            queued,
            noun="delivery(ies)",
            done=f"{queued.sent} delivery(ies) queued again.",
        )


class DigestDeliveryInline(admin.TabularInline):
    model = DigestDelivery
    extra = 0
    fields = ["period", "state", "attempts", "sent_at", "error"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    max_num = 0
    verbose_name_plural = "digests"


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Subscribers to the digests; a staff member's subscription (user set) gets staff digests."""

    list_display = [
        "email",
        "frequency",
        "language",
        "confirmed_at",
        "unsubscribed_at",
        "user",
        "last_period",
        "last_sent_at",
    ]
    list_filter = [
        "frequency",
        "language",
        ("confirmed_at", admin.EmptyFieldListFilter),
        ("unsubscribed_at", admin.EmptyFieldListFilter),
        ("user", admin.EmptyFieldListFilter),
    ]
    list_select_related = ["user"]
    search_fields = ["email"]
    filter_horizontal = ["documents", "agencies"]
    raw_id_fields = ["user"]
    readonly_fields = [
        "created_at",
        "last_period",
        "last_sent_at",
        "confirmation_sent_at",
        "already_subscribed_sent_at",
    ]
    inlines = [DigestDeliveryInline]

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("<path:object_id>/preview/", preview, name="tracker_subscription_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request, object_id):
        """The subscriber's next digest as it stands now: headers, HTML and text parts."""
        subscription = self.get_object(request, unquote(object_id))
        if subscription is None:
            raise Http404("No such subscription.")
        if not self.has_view_permission(request, subscription):
            raise PermissionDenied
        digest, message = digests.preview_digest(subscription)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Next digest for {subscription.email}",
            "opts": self.opts,
            "original": subscription,
            "digest": digest,
            "message": message,
            "html": message.alternatives[0][0],
            "would_send": not digest.is_empty or settings.TRACKER_DIGEST_SEND_EMPTY,
        }
        return TemplateResponse(request, "admin/tracker/subscription/preview.html", context)


@admin.register(DigestDelivery)
class DigestDeliveryAdmin(admin.ModelAdmin):
    """The digest log, one row per subscriber and period: read-only, with a retry."""

    list_display = ["created_at", "subscription", "period", "state", "attempts", "sent_at"]
    list_filter = ["state", "period"]
    list_select_related = ["subscription"]
    search_fields = ["subscription__email", "period", "message_id"]
    readonly_fields = [
        "subscription",
        "period",
        "period_start",
        "period_end",
        "covered_from",
        "covered_until",
        "state",
        "attempts",
        "claimed_at",
        "error",
        "message_id",
        "created_at",
        "sent_at",
    ]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send selected failed digests again", permissions=["change"])
    def retry(self, request, queryset):
        queued = digests.retry_digests(queryset)
        report_queued(
            self, request, queued, noun="digest(s)", done=f"{queued.sent} digest(s) queued again."
        )


class ScheduleAdmin(PeriodicTaskAdmin):
    """django-celery-beat's schedules, with the crontab's reading updated by a script file:
    its own page does it with inline script, which the admin's Content-Security-Policy refuses
    (tracker/content_policy.py)."""

    change_form_template = "admin/tracker/periodictask/change_form.html"


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, ScheduleAdmin)
