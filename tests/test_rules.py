"""One place per promise: each rule the product keeps lives in one function or queryset method
of tracker.models, and the places that show or act on it agree."""

import ast
import datetime
import re
from pathlib import Path

import pytest
import time_machine
from auditlog.models import LogEntry
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from django.utils.text import capfirst
from werkzeug import Response

from tests.factories import RecommendationFactory, SubscriptionFactory, UserFactory
from tests.support.pages import local_url
from tracker import digests
from tracker.models import DigestDelivery, Recommendation, Source, Subscription
from tracker.monitoring import check_source

UTC = datetime.UTC
APP = Path(__file__).resolve().parents[1] / "tracker"


def at(moment):
    return time_machine.travel(moment, tick=False)


def readonly_value(response, label):
    """The value the admin's change form shows, read-only, beside `label`."""
    page = response.content.decode()
    found = re.search(
        rf"<label>{re.escape(label)}:</label>\s*<div class=\"readonly\">([^<]*)</div>", page
    )
    assert found, f"no read-only {label!r} on the page"
    return found.group(1).strip()


# -- Review due -----------------------------------------------------------------------------


@override_settings(TIME_ZONE="America/New_York")
def test_the_admin_and_the_staff_digest_agree_on_when_a_review_is_due(client, uscis):
    """Added at 22:00 in New York on 31 December, already 1 January in UTC: the review is due
    90 local days later, on 30 March, wherever staff look, and overdue from 31 March (local)."""
    with at(datetime.datetime(2024, 1, 1, 3, tzinfo=UTC)):
        recommendation = RecommendationFactory(code="WRC-1", review_interval_days=90, lead=uscis)
        staff = UserFactory(username="staffer", is_staff=True, is_superuser=True)
        subscription = SubscriptionFactory(email="staff@example.org", user=staff)
    client.force_login(staff)
    preview_url = reverse("admin:tracker_subscription_preview", args=[subscription.pk])

    with at(datetime.datetime(2024, 3, 31, 2, tzinfo=UTC)):  # 30 March, 22:00 in New York
        assert "Review overdue: WRC-1" not in client.get(preview_url).content.decode()
    with at(datetime.datetime(2024, 4, 2, 15, tzinfo=UTC)):
        change_page = client.get(
            reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
        )
        preview = client.get(preview_url)

    assert change_page.status_code == 200 and preview.status_code == 200
    assert readonly_value(change_page, "Next review due") == "2024-03-30"
    assert "Review overdue: WRC-1 (due 30 March 2024)" in preview.content.decode()


# -- Status labels --------------------------------------------------------------------------


@pytest.mark.parametrize("status", Recommendation.Status)
def test_the_admin_and_the_public_pages_name_each_status_alike(status, client, admin_user):
    recommendation = RecommendationFactory(code="WRC-1")
    if status != Recommendation.Status.NOT_ASSESSED:
        recommendation.record_status(
            status, effective_on=datetime.date(2024, 5, 1), rationale="Checked."
        )
    english = client.get(recommendation.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="en")
    spanish = client.get(recommendation.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="es")
    client.force_login(admin_user)
    admin_list = client.get(reverse("admin:tracker_recommendation_changelist"))

    label = status.label
    assert f'<td class="field-status">{label}</td>' in admin_list.content.decode()
    assert f'<span class="badge status-{status}">{label}</span>' in english.content.decode()
    [spanish_label] = set(
        re.findall(rf'<span class="badge status-{status}">([^<]+)</span>', spanish.content.decode())
    )
    assert spanish_label != label  # translated, from the same text


# -- Active subscription --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confirmed", "unsubscribed", "active"),
    [(True, False, True), (False, False, False), (True, True, False), (False, True, False)],
)
def test_sending_signing_up_and_the_admin_agree_on_who_is_subscribed(
    confirmed, unsubscribed, active, client, admin_user
):
    now = datetime.datetime(2026, 11, 10, 9, tzinfo=UTC)
    joined = now - datetime.timedelta(days=60)
    subscription = SubscriptionFactory(
        email="reader@example.org",
        confirmed_at=joined if confirmed else None,
        unsubscribed_at=joined + datetime.timedelta(days=1) if unsubscribed else None,
    )
    sent_to = {s.pk for s, _period in digests.due_subscriptions(now=now)}
    client.force_login(admin_user)
    preview = client.get(reverse("admin:tracker_subscription_preview", args=[subscription.pk]))
    digests.subscribe(
        email="reader@example.org", language="en", frequency="weekly", documents=[], agencies=[]
    )

    assert (subscription.pk in sent_to) is active
    assert ("The subscription is not active" not in preview.content.decode()) is active
    [message] = mail.outbox
    assert ("already subscribed" in message.subject) is active


def test_a_run_for_many_subscribers_covers_each_from_its_own_last_digest(db):
    """Past 500 subscribers a run reads every active subscription's previous digests at once:
    each one's window still starts where its own last digest ended."""
    now = datetime.datetime(2026, 11, 10, 9, tzinfo=UTC)
    joined = now - datetime.timedelta(days=60)
    Subscription.objects.bulk_create(
        Subscription(email=f"reader{n}@example.org", confirmed_at=joined) for n in range(501)
    )
    reader = Subscription.objects.get(email="reader7@example.org")
    until = datetime.datetime(2026, 11, 2, tzinfo=UTC)
    DigestDelivery.objects.create(
        subscription=reader,
        period="2026-W44",
        period_start=datetime.date(2026, 10, 26),
        period_end=datetime.date(2026, 11, 1),
        covered_until=until,
        state=DigestDelivery.State.SENT,
    )
    pairs = digests.due_subscriptions(now=now)
    assert len(pairs) > 500

    whole_run = digests.collect_digest_data(pairs, now=now).covered_from
    [alone] = [pair for pair in pairs if pair[0] == reader]
    assert whole_run[reader.pk] == until
    assert digests.collect_digest_data([alone], now=now).covered_from[reader.pk] == until


# -- A source's monitoring state ------------------------------------------------------------


def stored_state(source):
    source = Source.objects.get(pk=source.pk)
    return source, {field.name: field.value_from_object(source) for field in source._meta.fields}


def test_staff_see_all_a_check_writes_read_only_and_the_audit_log_skips_it(
    client, admin_user, allow_local
):
    answers = iter(
        [
            Response(
                "<html><body><article><p>The dates are unchanged for now.</p></article></body>",
                content_type="text/html",
                headers={"ETag": '"v1"', "Last-Modified": "Thu, 01 Aug 2024 10:32:00 GMT"},
            ),
            Response("Not here", status=404),
        ]
    )
    allow_local.expect_request("/page").respond_with_handler(lambda request: next(answers))
    source = Source.objects.create(url=local_url(allow_local, "/page"), title="USCIS news")
    unchecked, before = stored_state(source)
    check_source(stored_state(source)[0])  # a first version
    check_source(stored_state(source)[0])  # then a failure
    checked, after = stored_state(source)
    written = {name for name in before if before[name] != after[name]}
    assert {"content_hash", "etag", "last_modified", "last_error"} <= written

    # Code that saves the state whole is not logged: the log keeps the edits people make.
    logged = LogEntry.objects.get_for_object(source).count()
    unchecked.save()
    assert LogEntry.objects.get_for_object(source).count() == logged
    checked.save()
    checked.title = "USCIS newsroom"
    checked.save()
    assert LogEntry.objects.get_for_object(source).count() == logged + 1

    # Staff see every part of it: the schedule to move, the rest read-only.
    client.force_login(admin_user)
    page = client.get(reverse("admin:tracker_source_change", args=[source.pk]))
    for name in written:
        field = Source._meta.get_field(name)
        if field.editable:
            assert f'name="{name}_0"' in page.content.decode()
        else:
            assert readonly_value(page, capfirst(field.verbose_name)) not in {"", "-"}, name


# -- Published ------------------------------------------------------------------------------

# The flag, and where it is read: the models' public()/visible_to() querysets and is_public.
FLAG = "is_published"
RULE_OWNER = APP / "models.py"
# Calls whose keyword arguments and string arguments are lookups: reading the flag there is a
# filter on it. Writes (a constructor, update(), a parameter of the importer) set the flag.
LOOKUP_CALLS = {
    "filter", "exclude", "get", "get_or_create", "update_or_create", "Q", "When", "F",
    "FilteredRelation", "getattr",
}  # fmt: skip
# A lookup through a relation or with an operator, or SQL naming the column.
FLAG_IN_TEXT = re.compile(rf"__{FLAG}\b|\b{FLAG}__|\b{FLAG}\b.*\s|\s.*\b{FLAG}\b")


def publication_reads(source):
    """Return (line, what) for each place in Python `source` that reads the publication flag
    to decide something: a lookup on it (keyword, string or unpacked dict), SQL naming it, or
    `obj.is_published` (the per-object rule is `is_public`)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == FLAG and isinstance(node.ctx, ast.Load):
            found.append((node.lineno, f"reads .{FLAG}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and FLAG_IN_TEXT.search(node.value):
                found.append((node.lineno, f"names the flag in {node.value!r}"))
        elif isinstance(node, ast.keyword) and is_lookup(node.arg):
            found.append((node.lineno, f"looks up {node.arg}="))
        elif isinstance(node, ast.Call) and call_name(node) in LOOKUP_CALLS:
            for keyword in node.keywords:
                if keyword.arg == FLAG:
                    found.append((keyword.value.lineno, f"{call_name(node)}({FLAG}=…)"))
                elif keyword.arg is None and isinstance(keyword.value, ast.Dict):
                    for key in keyword.value.keys:
                        if isinstance(key, ast.Constant) and key.value == FLAG:
                            found.append((key.lineno, f"{call_name(node)}(**{{{FLAG!r}: …}})"))
            for argument in node.args:
                for inner in ast.walk(argument):
                    if isinstance(inner, ast.Constant) and inner.value == FLAG:
                        found.append((inner.lineno, f"{call_name(node)}({FLAG!r}, …)"))
    return sorted(set(found))


def is_lookup(name):
    """`is_published__exact`, `recommendations__is_published`: a lookup, not a field name."""
    return bool(name) and "__" in name and FLAG in name.split("__")


def call_name(call):
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def publication_reads_in_app():
    found = []
    for path in sorted(APP.rglob("*.py")):
        if path != RULE_OWNER and "migrations" not in path.parts:
            found += [
                f"{path.relative_to(APP.parent)}:{line}: {what}"
                for line, what in publication_reads(path.read_text())
            ]
    # A template that branches on the flag decides visibility a second time: views hand
    # templates what the visitor may see, and `is_public` answers for one object.
    for path in sorted((APP / "templates").rglob("*")):
        if path.is_file():
            for line, text in enumerate(path.read_text().splitlines(), 1):
                if FLAG in text:
                    found.append(f"{path.relative_to(APP.parent)}:{line}: {text.strip()}")
    return found


def test_only_the_models_read_the_publication_flag():
    """Drafts never reaching the public is the main privacy promise: it lives in the models'
    public()/visible_to() querysets and Recommendation.is_public, and nothing else reads the
    flag (the admin and the importer may still set it)."""
    assert publication_reads_in_app() == []


@pytest.mark.parametrize(
    "code",
    [
        "Recommendation.objects.filter(is_published=True)",
        "Recommendation.objects.exclude(is_published=False)",
        "Document.objects.filter(recommendations__is_published=True)",
        "Recommendation.objects.filter(is_published__exact=True)",
        "Recommendation.objects.filter(Q(is_published=True) | Q(pk=1))",
        "Recommendation.objects.filter(**{'is_published': True})",
        "Evidence.objects.filter(**{'recommendations__is_published': True})",
        "Recommendation.objects.annotate(shown=F('is_published'))",
        "Recommendation.objects.filter(Q(('is_published', True)))",
        "Case(When(is_published=True, then=1))",
        "Recommendation.objects.values('document__recommendations__is_published')",
        "cursor.execute('SELECT id FROM tracker_recommendation WHERE is_published')",
        "shown = [rec for rec in recs if rec.is_published]",
        "shown = getattr(rec, 'is_published')",
    ],
)
def test_the_guard_catches_a_read_of_the_publication_flag(code):
    assert publication_reads(code)


@pytest.mark.parametrize(
    "code",
    [
        "Recommendation(document=document, code=code, is_published=is_published)",
        "Recommendation.objects.filter(pk=1).update(is_published=True)",
        "import_document(data, is_published=not draft)",
        "update_with_audit(queryset, {'is_published': True}, actor=user)",
        "list_display = ['code', 'is_published']",
        "recommendation.is_published = True",
        "def f():\n    'Created with is_published set as asked.'",
        "Recommendation.objects.public().filter(document=document)",
    ],
)
def test_the_guard_lets_the_flag_be_set(code):
    assert publication_reads(code) == []
