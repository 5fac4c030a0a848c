"""Public forms: signing up for digests and changing what a subscription follows."""

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Document, Subscription
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
