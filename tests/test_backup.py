"""Backup and restore: export_tracker / import_tracker round-trip everything tracked."""

import datetime
import gzip
import json

import pytest
from auditlog.context import set_actor
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import SubscriptionFactory, UserFactory
from tracker import backup
from tracker.demo import load_demo
from tracker.models import (
    Agency,
    ChangeAlert,
    DigestDelivery,
    FeedEntry,
    ImportProposal,
    Publisher,
    Recommendation,
    Source,
    SourceClaim,
    SourceVersion,
    StatusChange,
    Subscription,
    Theme,
    Webhook,
    WebhookDelivery,
)
from tracker.monitoring import claim_due_sources

pytestmark = pytest.mark.django_db


@pytest.fixture
def full_database():
    """The demo, plus watched sources with versions, an alert reviewed by staff, a feed entry,
    a webhook with a delivery, and a change recorded by a user the restore will not know."""
    load_demo()
    recorder = UserFactory(username="recorder", is_staff=True)
    recommendation = Recommendation.objects.filter(is_published=True).first()
    evidence = recommendation.evidence.first() or recommendation.document.recommendations.first()
    recommendation.record_status(
        "partial",
        effective_on=datetime.date(2024, 9, 2),
        rationale="Partly done (\u00e9t\u00e9 \u2014 checked).",
        by=recorder,
    )
    recommendation.themes.add(Theme.objects.create(name="Backups"))
    source = Source.objects.create(url="https://example.org/policy", title="Policy page")
    source.recommendations.add(recommendation)
    now = timezone.now().replace(microsecond=123456)
    first, second = (
        SourceVersion.objects.create(
            source=source, content_hash=f"{n}" * 64, text=f"Text {n}", url=source.url,
            http_status=200, fetched_at=now - datetime.timedelta(days=n),
        )
        for n in (2, 1)
    )  # fmt: skip
    ChangeAlert.objects.create(
        source=source, version=second, previous_version=first, diff="+Text 1",
        reviewed_at=now, reviewed_by=recorder,
    )  # fmt: skip
    feed = Source.objects.create(url="https://example.org/feed", kind=Source.Kind.FEED)
    FeedEntry.objects.create(
        source=feed, guid="entry-1", title="News", suggestions=[{"id": 1, "score": 0.5}]
    )
    hook = Webhook.objects.create(url="https://partner.example.org/hook")
    WebhookDelivery.objects.create(webhook=hook, event="evidence", payload={"id": 1})
    Source.objects.filter(pk=source.pk).update(check_interval=datetime.timedelta(hours=6))
    subscriber = SubscriptionFactory(
        email="reader@example.org",
        language="es",
        user=recorder,
        documents=[recommendation.document],
        agencies=[Agency.objects.get(acronym="USCIS")],
    )
    DigestDelivery.objects.create(
        subscription=subscriber, period="2024-W36", period_start=datetime.date(2024, 9, 2),
        period_end=datetime.date(2024, 9, 8), state=DigestDelivery.State.SENT, sent_at=now,
    )  # fmt: skip
    recommendation.former_codes.create(code="WRC-2024-9.9")
    ImportProposal.objects.create(
        code="WRC-2025", format="markdown", stored_fingerprint="0" * 64, created_by=recorder,
        items=[{"code": "WRC-2025-1", "text": "Restore asylum (\u00e9t\u00e9).", "lead": "DHS"}],
    )  # fmt: skip
    return {"recommendation": recommendation, "evidence": evidence, "recorder": recorder}


def empty_the_tracker():
    backup.empty_tracked_tables()


def row_counts():
    counts = {m._meta.label_lower: m._default_manager.count() for m in backup.tracked_models()}
    return {**counts, backup.AUDIT_LABEL: backup.audit_entries().count()}


def test_a_backup_restores_everything_into_an_empty_database(full_database, tmp_path):
    path = tmp_path / "tracker.json.gz"
    call_command("export_tracker", str(path), verbosity=0)
    before = backup.read_backup(path)
    counts = row_counts()
    assert all(counts.values()), counts  # every model has something to lose
    assert before["counts"] == counts
    assert before["users"] == ["recorder"]

    empty_the_tracker()
    get_user_model().objects.filter(username="recorder").delete()
    assert not backup.has_tracked_data()
    call_command("import_tracker", str(path), verbosity=0)

    assert row_counts() == counts
    call_command("export_tracker", str(tmp_path / "again.json"), verbosity=0)
    assert backup.read_backup(tmp_path / "again.json")["objects"] == before["objects"]

    recommendation = Recommendation.objects.get(pk=full_database["recommendation"].pk)
    assert recommendation.status == "partial"
    assert recommendation.ownerships.filter(role="lead").count() == 1
    assert "Backups" in set(recommendation.themes.values_list("name", flat=True))
    change = recommendation.status_changes.latest_first().first()
    assert change.rationale == "Partly done (\u00e9t\u00e9 \u2014 checked)."
    assert change.recorded_by.username == "recorder"
    assert not change.recorded_by.is_active  # an account made to keep the name, no login
    cited = StatusChange.objects.filter(evidence__isnull=False).first()
    assert cited.evidence.exists()
    alert = ChangeAlert.objects.get()
    assert alert.reviewed_at.microsecond == 123456
    assert alert.previous_version.text == "Text 2"
    assert Source.objects.get(title="Policy page").check_interval == datetime.timedelta(hours=6)
    assert FeedEntry.objects.get().suggestions == [{"id": 1, "score": 0.5}]
    assert Agency.objects.filter(parent__isnull=False).exists()
    # New rows get fresh ids after the restored ones.
    assert Publisher.objects.create(name="After the restore").pk > max(
        Publisher.objects.exclude(name="After the restore").values_list("pk", flat=True)
    )


def test_a_restore_brings_back_the_audit_trail_and_writes_none_of_its_own(full_database, tmp_path):
    from auditlog.models import LogEntry

    recommendation = full_database["recommendation"]
    editor = full_database["recorder"]
    with set_actor(editor):
        recommendation.title = "Renamed by staff"
        recommendation.save()
    trail = list(LogEntry.objects.get_for_object(recommendation).values_list("action", "changes"))
    assert trail
    Source.objects.create(url="https://example.org/claimed")
    claim_due_sources()  # a check in flight as the backup is taken
    path = tmp_path / "tracker.json"
    call_command("export_tracker", str(path), verbosity=0)
    counts = backup.read_backup(path)["counts"]
    assert "tracker.sourceclaim" not in counts
    assert counts["auditlog.logentry"] == backup.audit_entries().count()

    empty_the_tracker()
    call_command("import_tracker", str(path), verbosity=0)
    restored = Recommendation.objects.get(pk=recommendation.pk)
    entries = LogEntry.objects.get_for_object(restored)
    assert list(entries.values_list("action", "changes")) == trail  # no "created" by nobody
    assert entries.filter(actor__username="recorder").exists()
    assert backup.audit_entries().count() == counts["auditlog.logentry"]  # and no more
    assert not SourceClaim.objects.exists()


def test_a_restore_refuses_a_database_that_tracks_something_unless_told_to_replace(
    full_database, tmp_path
):
    path = tmp_path / "tracker.json"
    backup.write_backup(path)
    counts = row_counts()
    extra = Publisher.objects.create(name="Made after the backup")
    with pytest.raises(CommandError, match="already holds tracked data"):
        call_command("import_tracker", str(path), verbosity=0)
    assert Publisher.objects.filter(pk=extra.pk).exists()

    call_command("import_tracker", str(path), "--replace", verbosity=0)
    assert row_counts() == counts
    assert not Publisher.objects.filter(pk=extra.pk).exists()


def test_commands_report_progress(full_database, tmp_path, capsys):
    path = tmp_path / "tracker.json"
    call_command("export_tracker", str(path))
    out = capsys.readouterr().out
    assert "tracker.statuschange: " in out
    assert f"Exported {sum(row_counts().values())} objects." in out
    empty_the_tracker()
    call_command("import_tracker", str(path))
    out = capsys.readouterr().out
    assert "tracker.sourceversion: 2" in out
    assert "Restored" in out


def damaged(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


@pytest.fixture
def good_backup(full_database, tmp_path):
    path = tmp_path / "good.json"
    backup.write_backup(path)
    data = json.loads(path.read_text())
    empty_the_tracker()
    return path, data


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # Cut between characters: a cut inside one is "not UTF-8", another case here.
        (lambda raw, data: raw.decode()[: len(raw) // 2].encode(), "not valid JSON"),
        (lambda raw, data: gzip.compress(raw)[:-40], "damaged or truncated gzip"),
        (lambda raw, data: b"\x00\xff binary", "not UTF-8"),
        (lambda raw, data: b'{"objects": []}', "not a Tracker backup"),
        (lambda raw, data: json.dumps({**data, "version": 99}).encode(), "format version 99"),
        (lambda raw, data: json.dumps({**data, "objects": data["objects"][:-1]}).encode(),
         "incomplete"),
        (lambda raw, data: json.dumps(
            {**data, "objects": [{**data["objects"][0], "model": "auth.user"}, *data["objects"]],
             "counts": {**data["counts"], "auth.user": 1}}).encode(), "unknown models"),
    ],
    ids=["truncated", "truncated-gzip", "binary", "other-json", "newer", "missing-object",
         "foreign-model"],
)  # fmt: skip
def test_a_damaged_backup_is_refused_with_a_reason(good_backup, tmp_path, make, message):
    path, data = good_backup
    bad = damaged(tmp_path, "bad.json", make(path.read_bytes(), data))
    with pytest.raises(CommandError, match=message):
        call_command("import_tracker", bad, verbosity=0)
    assert not backup.has_tracked_data()


def test_a_backup_with_a_dangling_link_restores_nothing(good_backup, tmp_path):
    _, data = good_backup
    for item in data["objects"]:
        if item["model"] == "tracker.statuschange":
            item["fields"]["recommendation"] = 10**9  # no such recommendation
            break
    bad = damaged(tmp_path, "bad.json", json.dumps(data).encode())
    with pytest.raises(CommandError, match="inconsistent; nothing was restored"):
        call_command("import_tracker", bad, verbosity=0)
    assert not backup.has_tracked_data()


def test_a_backup_with_an_invalid_value_restores_nothing(good_backup, tmp_path):
    _, data = good_backup
    last_tracked = [item for item in data["objects"] if item["model"].startswith("tracker.")][-1]
    last_tracked["fields"]["created_at"] = "not a date"
    bad = damaged(tmp_path, "bad.json", json.dumps(data).encode())
    with pytest.raises(CommandError, match="cannot be restored"):
        call_command("import_tracker", bad, verbosity=0)
    assert not backup.has_tracked_data()


# -- What a restore trusts ----------------------------------------------------------------


def write_json(tmp_path, data, name="crafted.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_a_gzip_bomb_is_refused_before_it_fills_memory(good_backup, tmp_path):
    _, data = good_backup
    bomb = tmp_path / "bomb.json.gz"
    header = json.dumps(data)[:-1]  # the backup, its closing brace held back
    with gzip.open(bomb, "wt", compresslevel=9) as output:
        output.write(header + ', "padding": "')
        for _ in range(300):  # 300 MB of one letter, about 300 KB compressed
            output.write("a" * (1024 * 1024))
        output.write('"}')
    assert bomb.stat().st_size < 1024 * 1024
    with pytest.raises(CommandError, match="more than 256 MB of JSON once decompressed"):
        call_command("import_tracker", str(bomb), verbosity=0)
    with pytest.raises(CommandError, match="more than 1 MB"):
        call_command("import_tracker", str(bomb), "--max-size", "1", verbosity=0)
    assert not backup.has_tracked_data()


def first(data, model):
    return next(item for item in data["objects"] if item["model"] == model)


@pytest.mark.parametrize(
    ("craft", "message"),
    [
        (lambda data: {**data, "objects": [[[[]]] * 2] * 3}, "not serialized objects"),
        (lambda data: first(data, "tracker.publisher").update(fields="a string"),
         "fields are not an object"),
        (lambda data: first(data, "tracker.publisher").update(pk={"id": 1}),
         "primary key is not a number"),
        (lambda data: first(data, "tracker.publisher")["fields"].update(name=["a", "list"]),
         "name is not a plain value"),
        (lambda data: first(data, "tracker.subscription")["fields"].update(documents={"1": 2}),
         "documents is not a list of keys"),
        (lambda data: first(data, "tracker.statuschange")["fields"].update(recommendation={}),
         "recommendation is not a key"),
        (lambda data: first(data, "tracker.publisher")["fields"].update(is_admin=True),
         "no field 'is_admin'"),
        (lambda data: data.update(users=[{"username": "root"}]), "not a list of usernames"),
        (lambda data: data["counts"].update({"tracker.publisher": "2"}), "not whole numbers"),
    ],
    ids=["nested-lists", "fields-string", "pk-object", "name-list", "m2m-object",
         "fk-object", "unknown-field", "users-objects", "counts-strings"],
)  # fmt: skip
def test_a_backup_of_the_wrong_shape_is_refused_with_a_reason(
    good_backup, tmp_path, craft, message
):
    _, data = good_backup
    crafted = craft(data) or data
    with pytest.raises(CommandError, match=message):
        call_command("import_tracker", write_json(tmp_path, crafted), verbosity=0)
    assert not backup.has_tracked_data()


def test_a_deeply_nested_backup_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(
        '{"format": "tracker-backup", "objects": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    with pytest.raises(CommandError, match="nests its JSON too deeply"):
        call_command("import_tracker", str(path), verbosity=0)


def test_an_empty_backup_never_empties_the_database_unless_asked(full_database, tmp_path):
    empty = tmp_path / "empty.json"
    empty_the_tracker()
    backup.write_backup(empty)
    assert backup.read_backup(empty)["objects"] == []
    load_demo()
    counts = row_counts()
    with pytest.raises(CommandError, match=r"This backup is empty.*--allow-empty"):
        call_command("import_tracker", str(empty), "--replace", verbosity=0)
    assert row_counts() == counts

    call_command("import_tracker", str(empty), "--replace", "--allow-empty", verbosity=0)
    assert not backup.has_tracked_data()


def test_a_backup_cannot_point_an_outside_address_at_a_staff_account(
    full_database, tmp_path, capsys
):
    admin = UserFactory(username="boss", email="boss@tracker.example", is_staff=True)
    theirs = SubscriptionFactory(email="outsider@elsewhere.example", user=admin)
    own = SubscriptionFactory(email="Boss@Tracker.example", user=admin)
    path = tmp_path / "crafted.json"
    backup.write_backup(path)

    call_command("import_tracker", str(path), "--replace")

    theirs.refresh_from_db()
    own.refresh_from_db()
    assert theirs.user is None and not theirs.is_staff_digest
    assert own.user == admin and own.is_staff_digest
    # The fixture's reader@example.org named the staff account "recorder", here too.
    assert Subscription.objects.get(email="reader@example.org").user is None
    assert "2 subscription(s) named an account of this site but not its address" in (
        capsys.readouterr().out
    )
