"""Atom feeds of updates: the status changes of published recommendations, with their evidence.

One feed for the whole site, one per document and one per agency. Drafts never appear, whoever
asks: feeds are fetched by readers and shared caches, not by a signed-in visitor.
"""

import datetime

from django.contrib.syndication.views import Feed
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.feedgenerator import Atom1Feed
from django.utils.translation import gettext as _

from . import texts
from .labels import status_label
from .models import Agency, Document, Evidence, Ownership, Recommendation, StatusChange
from .progress import rollups_of
from .views import public_page

# How many updates a feed carries: readers poll it, so the newest are enough.
FEED_LENGTH = 50


class LanguageMarkedAtomFeed(Atom1Feed):
    """Atom whose entries say their language (xml:lang) where it is not the feed's: an entry
    about a recommendation not yet translated into the reader's language."""

    def item_attributes(self, item):
        attributes = super().item_attributes(item)
        language = item.get("language")
        if language and language != texts.reader_language(self.feed["language"]):
            attributes["xml:lang"] = language
        return attributes


def published_updates(recommendations=None):
    """Return the status changes of published recommendations (of `recommendations`, if
    given), newest recorded first, with what an entry shows: two queries for any length."""
    changes = StatusChange.objects.public()
    if recommendations is not None:
        changes = changes.filter(recommendation__in=recommendations.values("pk"))
    return (
        changes.select_related("recommendation__document")
        # Public evidence only, as on the recommendation's page.
        .prefetch_related(Prefetch("evidence", queryset=Evidence.objects.public()))
        # Newest recorded first: a change dated long ago but recorded today is news too.
        .order_by("-recorded_at", "-pk")
    )


def change_happened_at(change):
    return timezone.make_aware(datetime.datetime.combine(change.effective_on, datetime.time()))


def with_rollups(changes):
    """Return `changes` as a list, each parent recommendation among them given its
    sub-recommendations' `rollup` (progress.roll_up) for its entry: one query."""
    changes = list(changes)
    recommendations = [change.recommendation for change in changes]
    rollups = rollups_of(recommendations, within=Recommendation.objects.public())
    for recommendation in recommendations:
        recommendation.rollup = rollups.get(recommendation.pk)
    return changes


class UpdatesFeed(Feed):
    """Every published recommendation's status changes."""

    feed_type = LanguageMarkedAtomFeed
    description_template = "tracker/feeds/update.html"

    def title(self, obj):
        return _("Tracker: updates on recommendations")

    def subtitle(self, obj):
        return _("Status changes of published recommendations, with their evidence.")

    def link(self, obj):
        return reverse("public:home")

    def author_name(self, obj):
        return _("Tracker")

    def items(self, obj):
        return with_rollups(published_updates()[:FEED_LENGTH])

    def item_title(self, item):
        return _("%(code)s: %(status)s — %(title)s") % {
            "code": item.recommendation.code,
            "status": status_label(item.status),
            "title": item.recommendation.title,
        }

    def item_extra_kwargs(self, item):
        # The entry's language is its title's, the recommendation's (tracker/texts.py).
        return {"language": texts.text_in(item.recommendation, "title")[1]}

    def item_link(self, item):
        # Each change has its own anchor on the recommendation's page, so links (and the
        # entries' ids, which Atom takes from them) are unique.
        return f"{item.recommendation.get_absolute_url()}#change-{item.pk}"

    def item_pubdate(self, item):
        """When the change happened (its effective day, at the start of the day in the site's
        time zone), not when staff recorded it: a reader sorts entries by what happened."""
        return change_happened_at(item)

    def item_updateddate(self, item):
        """The change is append-only, but the evidence it cites may be corrected later."""
        return max([item.recorded_at, *(evidence.updated_at for evidence in item.evidence.all())])

    def item_categories(self, item):
        return [status_label(item.status), item.recommendation.document.code]


class DocumentUpdatesFeed(UpdatesFeed):
    """The status changes of one document's published recommendations."""

    def get_object(self, request, code):
        return get_object_or_404(Document.objects.public(), code=code)

    def title(self, obj):
        return _("Tracker: updates on “%(title)s”") % {"title": obj.title}

    def subtitle(self, obj):
        return _("Status changes of the published recommendations of %(code)s.") % {
            "code": obj.code
        }

    def link(self, obj):
        return obj.get_absolute_url()

    def items(self, obj):
        return with_rollups(published_updates(obj.recommendations.all())[:FEED_LENGTH])


class AgencyUpdatesFeed(UpdatesFeed):
    """The status changes of the published recommendations an agency, or an agency under it,
    leads or supports (as on its page)."""

    def get_object(self, request, slug):
        return get_object_or_404(Agency, slug=slug)

    def title(self, obj):
        return _("Tracker: updates on recommendations to %(agency)s") % {"agency": obj.name}

    def subtitle(self, obj):
        return _(
            "Status changes of the published recommendations %(agency)s and its sub-agencies "
            "lead or support."
        ) % {"agency": obj.display_name}

    def link(self, obj):
        return obj.get_absolute_url()

    def items(self, obj):
        owned = Recommendation.objects.filter(
            pk__in=Ownership.objects.filter(agency__in=obj.family_ids()).values("recommendation")
        )
        return with_rollups(published_updates(owned)[:FEED_LENGTH])


# Served as the public pages are: GET/HEAD only, cached briefly per language.
updates_feed = public_page(UpdatesFeed())
document_updates_feed = public_page(DocumentUpdatesFeed())
agency_updates_feed = public_page(AgencyUpdatesFeed())


# --- The feeds' readable pages ----------------------------------------------------------------


@public_page
def updates_page(request, code=None, slug=None):
    """A feed as a page a browser shows (the feed itself is XML for feed readers): the same
    entries, newest recorded first, with the feed's address to copy into a reader."""
    feed = DocumentUpdatesFeed() if code else AgencyUpdatesFeed() if slug else UpdatesFeed()
    obj = feed.get_object(request, code or slug) if (code or slug) else None
    if code:
        feed_url = reverse("public:feed_document", args=[code])
    elif slug:
        feed_url = reverse("public:feed_agency", args=[slug])
    else:
        feed_url = reverse("public:feed_updates")
    return render(
        request,
        "tracker/updates.html",
        {
            "title": feed.title(obj),
            "subtitle": feed.subtitle(obj),
            "about": obj,
            "changes": feed.items(obj),
            "feed_url": request.build_absolute_uri(feed_url),
        },
    )
