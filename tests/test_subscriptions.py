"""Signing up for digests: the public form, double opt-in by a signed link sent over real SMTP,
preferences, one-click unsubscribe, and clear errors for bad addresses and tampered links."""

import datetime
import os
import re
import threading
from urllib.parse import urlsplit

import pytest
import time_machine
from django.db import connection
from django.test import Client

from tests.factories import AgencyFactory, DocumentFactory, RecommendationFactory
from tests.support.outages import free_port
from tracker import digests
from tracker.models import Subscription

UTC = datetime.UTC
CONFIRMATION_INTERVAL = datetime.timedelta(minutes=10)
ALREADY_SUBSCRIBED = "You are already subscribed to the recommendation tracker"


@pytest.fixture
def document(db, uscis):
    document = DocumentFactory(code="WRC-2024", title="Migration does not start at the border")
    RecommendationFactory(document=document, code="WRC-2024-1", lead=uscis)
    return document


def sign_up(client, document, *, email="ana@example.org", headers=None, **fields):
    """POST the form; upper-case `fields` are request META (REMOTE_ADDR, HTTP_…)."""
    meta = {name: fields.pop(name) for name in list(fields) if name.isupper()}
    data = {"email": email, "frequency": "weekly", "documents": [document.pk], **fields}
    return client.post("/subscribe/", data, headers=headers, **meta)


def link_in(message, path_prefix):
    """The path of the one link to `path_prefix` in the message's plain-text part."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    [url] = {url for url in re.findall(r"https?://\S+", text) if path_prefix in url}
    return urlsplit(url).path


def test_signing_up_sends_a_confirmation_link_that_starts_the_digests(
    client, document, smtp_server
):
    page = client.get("/subscribe/")
    assert page.status_code == 200
    assert b"Migration does not start at the border" in page.content

    response = sign_up(client, document)
    assert response.status_code == 302 and response["Location"] == "/subscribe/sent/"
    assert b"Check your inbox" in client.get(response["Location"]).content
    subscription = Subscription.objects.get(email="ana@example.org")
    assert not subscription.is_active
    assert list(subscription.documents.all()) == [document]

    [message] = smtp_server.to("ana@example.org")
    assert message["Subject"] == "Confirm your subscription to the recommendation tracker"
    html = message.get_body(preferencelist=("html",)).get_content()
    confirm_path = link_in(message, "/subscribe/confirm/")
    assert confirm_path in html

    confirmed = client.get(confirm_path)
    assert confirmed.status_code == 200
    assert b"Subscription confirmed" in confirmed.content
    subscription.refresh_from_db()
    assert subscription.is_active
    assert client.get(confirm_path).status_code == 200  # a second click is harmless


def test_the_sign_up_language_is_the_visitors(client, document, smtp_server):
    with time_machine.travel(datetime.datetime(2026, 11, 2, 9, 0, tzinfo=UTC)) as clock:
        sign_up(client, document, email="lucia@example.org")
        clock.shift(CONFIRMATION_INTERVAL)  # a new link may be sent
        sign_up(
            client,
            document,
            email="Lucia@Example.org",
            frequency="monthly",
            headers={"Accept-Language": "es-MX,es;q=0.9"},
        )
    subscription = Subscription.objects.get(email="lucia@example.org")
    assert subscription.language == "es"
    assert subscription.frequency == "monthly"  # not confirmed yet: the new choice counts
    assert "suscripción" in smtp_server.messages[-1]["Subject"]


@pytest.mark.parametrize("address", ["", "not-an-address", "ana@", "ana@example..org"])
def test_a_bad_address_is_a_form_error_and_nothing_is_sent(client, document, smtp_server, address):
    response = sign_up(client, document, email=address)
    assert response.status_code == 200
    assert b"errorlist" in response.content
    assert re.search(rb"Enter (a valid|your) email address", response.content)
    assert not Subscription.objects.exists()
    assert smtp_server.messages == []


def test_following_nothing_is_a_form_error(client, document, smtp_server):
    response = client.post("/subscribe/", {"email": "ana@example.org", "frequency": "weekly"})
    assert response.status_code == 200
    assert b"Choose at least one document or agency to follow." in response.content
    assert not Subscription.objects.exists()


def test_signing_up_again_does_not_change_a_confirmed_subscription(client, document, smtp_server):
    other = DocumentFactory(code="HILL-2021")
    RecommendationFactory(document=other, code="HILL-2021-1")
    sign_up(client, document)
    client.get(link_in(smtp_server.messages[0], "/subscribe/confirm/"))

    # Anyone can type an address: the owner is told, the choices stay.
    sign_up(client, other, frequency="monthly")
    subscription = Subscription.objects.get()
    assert list(subscription.documents.all()) == [document]
    assert subscription.frequency == "weekly" and subscription.is_active
    assert len(smtp_server.messages) == 2
    assert smtp_server.messages[1]["Subject"] == ALREADY_SUBSCRIBED


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature changed
        lambda token: "9999" + token[token.index(":") :],  # another subscription's id
        lambda token: token[:10],  # cut short
    ],
)
def test_a_tampered_confirmation_link_is_a_clear_400(client, document, smtp_server, tamper):
    sign_up(client, document)
    token = link_in(smtp_server.messages[0], "/subscribe/confirm/").split("/")[-2]
    response = client.get(f"/subscribe/confirm/{tamper(token)}/")
    assert response.status_code == 400
    assert b"This link is not valid" in response.content
    assert not Subscription.objects.get().is_active


def test_an_expired_confirmation_link_says_so(client, document, smtp_server):
    with time_machine.travel(datetime.datetime(2026, 11, 1, tzinfo=UTC)):
        sign_up(client, document)
    confirm_path = link_in(smtp_server.messages[0], "/subscribe/confirm/")
    with time_machine.travel(datetime.datetime(2026, 11, 9, tzinfo=UTC)):
        response = client.get(confirm_path)
    assert response.status_code == 400
    assert b"This confirmation link has expired" in response.content
    assert not Subscription.objects.get().is_active


def test_a_confirmation_token_does_not_open_the_preferences(client, document, smtp_server):
    sign_up(client, document)
    token = link_in(smtp_server.messages[0], "/subscribe/confirm/").split("/")[-2]
    assert client.get(f"/subscription/{token}/").status_code == 400
    assert client.post(f"/subscription/{token}/unsubscribe/").status_code == 400


# -- Preferences and unsubscribing --------------------------------------------------------


@pytest.fixture
def subscription(document):
    subscription = Subscription.objects.create(
        email="ana@example.org", confirmed_at=datetime.datetime(2026, 10, 1, tzinfo=UTC)
    )
    subscription.documents.set([document])
    return subscription


def paths(subscription):
    links = digests.subscription_links(subscription)
    return urlsplit(links["preferences_url"]).path, urlsplit(links["unsubscribe_url"]).path


def test_the_preferences_page_changes_what_is_followed(client, subscription, uscis):
    preferences, _unsubscribe = paths(subscription)
    page = client.get(preferences)
    assert page.status_code == 200
    assert b"ana@example.org" in page.content

    response = client.post(
        preferences, {"frequency": "monthly", "language": "es", "agencies": [uscis.pk]}
    )
    assert response.status_code == 200
    assert b"Your preferences are saved." in response.content
    subscription.refresh_from_db()
    assert (subscription.frequency, subscription.language) == ("monthly", "es")
    assert list(subscription.documents.all()) == []
    assert list(subscription.agencies.all()) == [uscis]


def test_preferences_need_something_to_follow(client, subscription):
    preferences, _unsubscribe = paths(subscription)
    response = client.post(preferences, {"frequency": "weekly", "language": "en"})
    assert b"Choose at least one document or agency to follow." in response.content
    assert subscription.documents.exists()


def test_unsubscribing_asks_first_then_one_post_does_it(subscription):
    # Mail clients POST the List-Unsubscribe URL with no CSRF token (RFC 8058).
    client = Client(enforce_csrf_checks=True)
    _preferences, unsubscribe = paths(subscription)
    page = client.get(unsubscribe)
    assert page.status_code == 200 and b"<form" in page.content
    subscription.refresh_from_db()
    assert subscription.is_active  # a link scanner's GET changes nothing

    response = client.post(unsubscribe, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert b"You are unsubscribed" in response.content
    subscription.refresh_from_db()
    assert subscription.unsubscribed_at is not None and not subscription.is_active
    assert client.post(unsubscribe).status_code == 200  # again: still unsubscribed


def test_a_tampered_unsubscribe_link_is_a_clear_400(client, subscription):
    _preferences, unsubscribe = paths(subscription)
    tampered = unsubscribe.replace(f"/{subscription.pk}:", f"/{subscription.pk + 1}:")
    for response in (client.get(tampered), client.post(tampered)):
        assert response.status_code == 400
        assert b"This link is not valid" in response.content
    subscription.refresh_from_db()
    assert subscription.is_active


def test_signing_up_again_after_unsubscribing_needs_a_new_confirmation(
    client, subscription, document, smtp_server
):
    digests.unsubscribe(subscription)
    sign_up(client, document, frequency="monthly")
    subscription.refresh_from_db()
    assert not subscription.is_active and subscription.frequency == "monthly"
    client.get(link_in(smtp_server.messages[0], "/subscribe/confirm/"))
    subscription.refresh_from_db()
    assert subscription.is_active


def test_the_sign_up_form_lists_only_public_documents_and_agencies(client, document):
    draft_only = DocumentFactory(title="Unpublished plan")
    RecommendationFactory(document=draft_only, is_published=False)
    AgencyFactory(name="Agency with nothing published")
    content = client.get("/subscribe/").content
    assert b"Migration does not start at the border" in content
    assert b"U.S. Citizenship and Immigration Services" in content
    assert b"Unpublished plan" not in content
    assert b"Agency with nothing published" not in content


def test_an_old_confirmation_link_does_not_undo_an_unsubscribe(client, document, smtp_server):
    sign_up(client, document)
    confirm_path = link_in(smtp_server.messages[0], "/subscribe/confirm/")
    client.get(confirm_path)
    subscription = Subscription.objects.get()
    digests.unsubscribe(subscription)

    response = client.get(confirm_path)
    assert response.status_code == 200
    assert b"You are unsubscribed" in response.content
    subscription.refresh_from_db()
    assert not subscription.is_active


def test_a_mail_server_that_is_down_gets_a_clear_message_and_keeps_the_sign_up(
    client, document, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    settings.EMAIL_TIMEOUT = 5
    response = sign_up(client, document)
    assert response.status_code == 200
    assert b"We could not send the confirmation email just now." in response.content
    assert not Subscription.objects.get(email="ana@example.org").is_active


def test_a_sign_up_that_failed_to_mail_may_be_tried_again_at_once(
    client, document, smtp_server, settings
):
    working_port = settings.EMAIL_PORT
    settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = free_port(), 5  # nothing listens
    assert b"We could not send" in sign_up(client, document).content
    settings.EMAIL_PORT = working_port
    assert sign_up(client, document).status_code == 302
    assert len(smtp_server.to("ana@example.org")) == 1


# -- Limits: anyone can type an address ------------------------------------------------------

NOW = datetime.datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_an_address_signed_up_25_times_gets_one_confirmation_mail(client, document, smtp_server):
    with time_machine.travel(NOW, tick=False):
        responses = [
            # From 25 client addresses, so the limit per client does not step in.
            sign_up(client, document, REMOTE_ADDR=f"192.0.2.{n}")
            for n in range(25)
        ]
    assert {(r.status_code, r["Location"]) for r in responses} == {(302, "/subscribe/sent/")}
    assert len(smtp_server.to("ana@example.org")) == 1


def test_a_new_confirmation_link_may_be_sent_ten_minutes_later(client, document, smtp_server):
    with time_machine.travel(NOW, tick=False) as clock:
        sign_up(client, document)
        clock.shift(CONFIRMATION_INTERVAL - datetime.timedelta(seconds=1))
        sign_up(client, document)
        assert len(smtp_server.messages) == 1
        clock.shift(datetime.timedelta(seconds=1))
        sign_up(client, document)
    first, second = smtp_server.to("ana@example.org")
    assert second["Subject"] == first["Subject"]
    assert link_in(second, "/subscribe/confirm/")


def test_a_confirmed_address_is_told_once_a_day_that_it_is_subscribed(
    client, subscription, document, smtp_server
):
    with time_machine.travel(NOW, tick=False) as clock:
        for _ in range(5):
            sign_up(client, document)
        [told] = smtp_server.to("ana@example.org")
        clock.shift(datetime.timedelta(hours=23, minutes=59))
        sign_up(client, document)
        assert len(smtp_server.messages) == 1
        clock.shift(datetime.timedelta(minutes=1))
        sign_up(client, document)
    assert len(smtp_server.to("ana@example.org")) == 2

    assert told["Subject"] == ALREADY_SUBSCRIBED
    text = told.get_body(preferencelist=("plain",)).get_content()
    assert "/subscribe/confirm/" not in text
    manage = link_in(told, "/subscription/")
    assert manage in told.get_body(preferencelist=("html",)).get_content()
    page = client.get(manage)
    assert page.status_code == 200 and b"ana@example.org" in page.content
    subscription.refresh_from_db()
    assert subscription.is_active and subscription.frequency == "weekly"


def test_the_already_subscribed_mail_is_in_the_subscribers_language(
    client, subscription, document, smtp_server
):
    subscription.language = "es"
    subscription.save()
    sign_up(client, document)
    [told] = smtp_server.messages
    assert "Usted ya está suscrito al seguimiento de recomendaciones" in told["Subject"]
    assert "Administrar mi suscripción" in told.get_body(preferencelist=("html",)).get_content()


def test_the_answer_tells_nothing_about_the_address(client, document, smtp_server):
    Subscription.objects.create(email="known@example.org", confirmed_at=NOW)
    names = ("new", "pending", "known")

    def answer(address):
        response = sign_up(client, document, email=address)
        headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}
        page = client.get(response["Location"])
        return response.status_code, headers, page.status_code, page.content

    with time_machine.travel(NOW, tick=False):
        sign_up(client, document, email="pending@example.org")  # mailed just now
        new, pending, known = (answer(f"{name}@example.org") for name in names)
    assert new == pending == known
    # The same answer whether a mail went out (new, known) or not (pending: mailed before).
    assert [len(smtp_server.to(f"{name}@example.org")) for name in names] == [1, 1, 1]


def test_too_many_sign_ups_from_one_client_are_refused_with_a_clear_message(
    client, document, smtp_server, settings
):
    settings.TRACKER_SIGNUPS_PER_HOUR = 3
    with time_machine.travel(NOW + datetime.timedelta(minutes=15), tick=False):
        for n in range(3):
            assert sign_up(client, document, email=f"n{n}@example.org").status_code == 302
        # Made-up forwarded addresses do not make another client.
        refused = sign_up(
            client, document, email="n3@example.org", HTTP_X_FORWARDED_FOR="198.51.100.9"
        )
        in_spanish = sign_up(
            client, document, email="n4@example.org", headers={"Accept-Language": "es"}
        )
        other_client = sign_up(client, document, email="n5@example.org", REMOTE_ADDR="192.0.2.1")
    assert refused.status_code == 429
    assert refused["Retry-After"] == str(45 * 60)  # when the hour's allowance renews
    content = refused.content.decode()
    assert "Too many sign-ups have come from your connection in the last hour." in content
    assert 'value="n3@example.org"' in content  # the form is shown again, as filled in
    assert in_spanish.status_code == 429
    assert "demasiadas suscripciones" in in_spanish.content.decode()
    assert other_client.status_code == 302
    mailed = {message["To"] for message in smtp_server.messages}
    assert mailed == {"n0@example.org", "n1@example.org", "n2@example.org", "n5@example.org"}
    assert not Subscription.objects.filter(email__in=["n3@example.org", "n4@example.org"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="concurrent writers need PostgreSQL (SQLite serialises them)",
)
def test_sign_ups_racing_for_one_address_send_one_mail(document, smtp_server, settings):
    settings.TRACKER_SIGNUPS_PER_HOUR = 100
    start = threading.Barrier(10)
    statuses = []

    def visitor():
        try:
            start.wait()
            statuses.append(sign_up(Client(), document).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=visitor) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [302] * 10
    assert len(smtp_server.to("ana@example.org")) == 1
