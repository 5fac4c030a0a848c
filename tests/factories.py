import datetime

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from tracker.models import (
    Agency,
    Document,
    Evidence,
    Ownership,
    Publisher,
    Recommendation,
    Subscription,
    Theme,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    password = factory.django.Password("correct horse battery staple")


class PublisherFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Publisher
        django_get_or_create = ["name"]

    name = "Women's Refugee Commission"
    acronym = "WRC"


class AgencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agency

    name = factory.Sequence(lambda n: f"Agency {n}")
    acronym = factory.Sequence(lambda n: f"AG{n}")


class ThemeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Theme
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"Theme {n}")


class DocumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Document

    code = factory.Sequence(lambda n: f"DOC-{n}")
    title = factory.Sequence(lambda n: f"Document {n}")
    publisher = factory.SubFactory(PublisherFactory)
    kind = Document.Kind.BRIEF
    published_on = datetime.date(2024, 7, 1)


class RecommendationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recommendation
        skip_postgeneration_save = True

    document = factory.SubFactory(DocumentFactory)
    code = factory.Sequence(lambda n: f"REC-{n}")
    title = factory.Sequence(lambda n: f"Recommendation {n}")
    text = factory.LazyAttribute(lambda rec: f"{rec.title}: the administration should act.")
    is_published = True

    @factory.post_generation
    def lead(self, create, agency, **kwargs):
        if create and agency is not None:
            Ownership.objects.create(recommendation=self, agency=agency, role=Ownership.Role.LEAD)


class EvidenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Evidence

    title = factory.Sequence(lambda n: f"News report {n}")
    outlet = "The Hill"
    url = factory.Sequence(lambda n: f"https://news.example.org/{n}")
    published_on = datetime.date(2024, 8, 1)
    kind = Evidence.Kind.NEWS_REPORT
    effect = Evidence.Effect.ADVANCES


class SubscriptionFactory(factory.django.DjangoModelFactory):
    """A confirmed subscriber (pass confirmed_at=None for one awaiting confirmation)."""

    class Meta:
        model = Subscription
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"reader{n}@example.org")
    confirmed_at = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(days=60))

    @factory.post_generation
    def documents(self, create, documents, **kwargs):
        if create and documents:
            self.documents.set(documents)

    @factory.post_generation
    def agencies(self, create, agencies, **kwargs):
        if create and agencies:
            self.agencies.set(agencies)
