"""Public forms: signing up for digests, changing what a subscription follows, and choosing
which status changes to list."""

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .changes import default_range
from .labels import STATUS_LABELS
from .models import Agency, Document, Recommendation, Subscription, Theme
from .public import public_agencies


class FollowedItemsMixin:
    """Documents and agencies as checkboxes; at least one of them must be chosen."""

    def add_followed_fields(self):
        self.fields["documents"] = forms.ModelMultipleChoiceField(
            queryset=Document.objects.public().order_by("-published_on", "title"),
            widget=forms.CheckboxSelectMultiple,
            required=False,
            label=_("Documents to follow"),
        )
        self.fields["agencies"] = forms.ModelMultipleChoiceField(
            queryset=public_agencies().order_by("name"),
            widget=forms.CheckboxSelectMultiple,
            required=False,
            label=_("Agencies to follow"),
            help_text=_("Following an agency includes its sub-agencies."),
        )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("documents") and not cleaned.get("agencies"):
            raise forms.ValidationError(
                _("Choose at least one document or agency to follow."), code="nothing_followed"
            )
        return cleaned


class SubscribeForm(FollowedItemsMixin, forms.Form):
    email = forms.EmailField(
        label=_("Your email address"),
        max_length=254,
        error_messages={
            "required": _("Enter your email address."),
            "invalid": _("Enter a valid email address, such as name@example.org."),
        },
    )
    frequency = forms.ChoiceField(
        label=_("How often"),
        choices=Subscription.Frequency.choices,
        initial=Subscription.Frequency.WEEKLY,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_followed_fields()


class PreferencesForm(FollowedItemsMixin, forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["frequency", "language", "documents", "agencies"]
        widgets = {"frequency": forms.RadioSelect, "language": forms.RadioSelect}
        labels = {"frequency": _("How often"), "language": _("Language of the digest")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_followed_fields()  # initial values come from the instance (Meta.fields)


def scope_fields(*, user=None, agency_label=None):
    """The document, agency (with its sub-agencies) and theme choices reports and the list of
    what moved share: what `user` may see (the public's when None), by code or slug."""
    visible = Recommendation.objects.visible_to(user)
    document = forms.ModelChoiceField(
        queryset=Document.objects.visible_to(user).order_by("code"),
        to_field_name="code",
        required=False,
        label=_("Document"),
        empty_label=_("All documents"),
    )
    document.label_from_instance = lambda doc: f"{doc.code}: {doc.title}"
    return {
        "document": document,
        # Any agency in the directory: a department whose sub-agencies own the asks has a
        # report and changes though it owns none itself.
        "agency": forms.ModelChoiceField(
            queryset=Agency.objects.order_by("name"),
            to_field_name="slug",
            required=False,
            label=agency_label or _("Agency (with its sub-agencies)"),
            empty_label=_("All agencies"),
        ),
        "theme": forms.ModelChoiceField(
            queryset=Theme.objects.filter(recommendations__in=visible).distinct().order_by("name"),
            to_field_name="slug",
            required=False,
            label=_("Theme"),
            empty_label=_("All themes"),
        ),
    }


class ReportForm(forms.Form):
    """What a progress report covers: one document, agency or theme (or everything), as of a
    date, and optionally the changes since another."""

    as_of = forms.DateField(
        required=False,
        label=_("As of"),
        help_text=_("The status each recommendation had at the end of this day. Default: today."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    since = forms.DateField(
        required=False,
        label=_("Changes since"),
        help_text=_("Optional: mark what moved from this day to the report's date."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Reports show public data only, whoever asks.
        self.fields = {**scope_fields(), **self.fields}

    def clean(self):
        cleaned = super().clean()
        chosen = [name for name in ("document", "agency", "theme") if cleaned.get(name)]
        if len(chosen) > 1:
            raise forms.ValidationError(
                _("Choose one document, one agency or one theme, or none for everything."),
                code="one_scope",
            )
        today = timezone.localdate()
        as_of = cleaned.get("as_of") or today
        if as_of > today:
            self.add_error("as_of", _("Choose a day up to today."))
        since = cleaned.get("since")
        if since and since > as_of:
            self.add_error("since", _("Choose a day before the report's date."))
        cleaned["as_of"] = as_of
        return cleaned


class ChangesForm(forms.Form):
    """Which status changes to list (tracker.changes): a range of days, both included, and
    optionally a document, an agency (with its sub-agencies), a theme and the status moved
    to. The choices are those `user` may see (the public's when None)."""

    def __init__(self, data=None, *, user=None):
        start, end = default_range()
        # Always bound: a missing or empty date is the default range's, shown in the form.
        data = data.copy() if data is not None else {}
        for name, day in (("from", start), ("to", end)):
            if not data.get(name):
                data[name] = day.isoformat()
        super().__init__(data)
        date_input = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
        self.fields["from"] = forms.DateField(label=_("From"), widget=date_input)
        self.fields["to"] = forms.DateField(label=_("To (included)"), widget=date_input)
        self.fields.update(scope_fields(user=user))
        self.fields["status"] = forms.ChoiceField(
            label=_("Moved to"),
            choices=[("", _("Any status")), *STATUS_LABELS.items()],
            required=False,
        )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("from") and cleaned.get("to") and cleaned["from"] > cleaned["to"]:
            raise forms.ValidationError(
                _("The start date must be on or before the end date."), code="bad_range"
            )
        return cleaned

    def filters(self):
        """The keyword arguments of changes.status_changes_between, from valid data."""
        data = self.cleaned_data
        return {
            "document": data.get("document"),
            "agency": data.get("agency"),
            "theme": data.get("theme"),
            "status": data.get("status") or None,
        }
