"""Back up and restore everything Tracker tracks, as one JSON file (gzipped if named .gz).

The file is Django's own serialization of every model of the tracker app (publishers,
agencies, themes, documents, recommendations with owners and themes, status history with
cited evidence, evidence, sources and kept versions, alerts, feed entries, webhooks and
their deliveries) and the audit trail of their edits, under a header that names the format,
its version and how many objects of each model it holds. Primary keys are kept, so links
survive; users are referred to by username (natural keys) and are not themselves backed up: a
restore links history to the accounts of the same name, creating inactive ones for names it
does not know. Work in flight (claims of checks) is not data and is left out.

A restore trusts the file for what Tracker tracks, not for who may do what here: no account
is created with a password or a privilege, a subscription keeps its link to an existing
account only when it is that account's address (else it would mail a staff digest to a
stranger), and the file is checked, size and shape, before anything is written.
"""

import datetime
import gzip
import json
import zlib
from collections import Counter
from pathlib import Path

from auditlog.context import disable_auditlog
from auditlog.models import LogEntry
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from .caching import note_data_changed
from .ledger import rebuild_ledger
from .models import Subscription

FORMAT = "tracker-backup"
# Bump when a change to the models makes old files unreadable without a conversion.
VERSION = 1
# Refuse a file that decompresses past this (a gzip bomb would otherwise fill memory): the
# JSON is held in memory whole, at two to three times its size once parsed.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
READ_CHUNK = 1024 * 1024
SCALARS = (str, int, float, bool, type(None))


class BackupError(Exception):
    """A backup that cannot be written or restored, with a message for the person running it."""


class Encoder(DjangoJSONEncoder):
    # DjangoJSONEncoder rounds times to milliseconds; a backup keeps every microsecond.
    def default(self, o):
        if isinstance(o, datetime.datetime | datetime.time):
            return o.isoformat()
        return super().default(o)


# Not data, so never backed up: work in flight (a claim restored from a backup would hold a
# check that is queued nowhere) and what is derived from the rest (tracker.ledger, rebuilt
# after a restore).
NOT_BACKED_UP = {
    "tracker.sourceclaim",
    "tracker.progressshare",
    "tracker.progressdelta",
    "tracker.progressscope",
    "tracker.progressstale",
}


# The audit trail of tracked rows travels with them (django-auditlog's entries).
AUDIT_LABEL = "auditlog.logentry"


def audit_entries():
    return LogEntry.objects.filter(content_type__app_label="tracker").order_by("pk")


def tracked_models():
    """The tracker app's models that hold data, parents before the rows that point at them."""
    return [
        model
        for model in apps.get_app_config("tracker").get_models()
        if model._meta.label_lower not in NOT_BACKED_UP
    ]


def user_fields(model):
    """Names of `model`'s foreign keys and many-to-many fields to user accounts."""
    user_model = get_user_model()
    return [
        field.name
        for field in model._meta.get_fields()
        if field.concrete and field.is_relation and field.related_model is user_model
    ]


def usernames_in(objects, fields_by_label):
    names = set()
    for item in objects:
        for name in fields_by_label.get(item["model"], ()):
            value = item["fields"].get(name)
            if not value:
                continue
            keys = value if isinstance(value[0], list) else [value]  # many-to-many: a list
            names.update(key[0] for key in keys)
    return sorted(names)


def export_data(*, progress=None):
    """Return the backup as a dict: the header and every tracked object, by primary key.

    On PostgreSQL it reads one snapshot (repeatable read), so a backup taken while staff
    work is consistent.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        objects, counts, fields_by_label = [], {}, {}
        for model in tracked_models():
            label = model._meta.label_lower
            many = [field.name for field in model._meta.many_to_many]
            rows = model._default_manager.order_by("pk").prefetch_related(*many)
            serialized = serializers.serialize("python", rows, use_natural_foreign_keys=True)
            objects += serialized
            counts[label] = len(serialized)
            fields_by_label[label] = user_fields(model)
            if progress:
                progress(label, len(serialized))
        entries = serializers.serialize("python", audit_entries(), use_natural_foreign_keys=True)
        objects += entries
        counts[AUDIT_LABEL] = len(entries)
        fields_by_label[AUDIT_LABEL] = user_fields(LogEntry)
        if progress:
            progress(AUDIT_LABEL, len(entries))
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "counts": counts,
        "users": usernames_in(objects, fields_by_label),
        "objects": objects,
    }


def write_backup(path, *, progress=None):
    """Write the backup to `path` (gzipped if it ends in .gz); return the counts by model."""
    data = export_data(progress=progress)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "wt", encoding="utf-8") as output:
            json.dump(data, output, cls=Encoder, ensure_ascii=False, indent=1)
    except OSError as error:
        raise BackupError(f"Cannot write {path}: {error.strerror or error}.") from None
    return data["counts"]


def read_backup(path, *, max_bytes=DEFAULT_MAX_BYTES):
    """Return the backup in `path`, checked: the right format and version, shape and size."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"No such file: {path}.")
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gzipped else open)(path, "rb") as source:
            raw = read_at_most(source, max_bytes, path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise BackupError(f"{path} is a damaged or truncated gzip file ({error}).") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BackupError(f"{path} is not UTF-8 text: not a Tracker backup.") from None
    except json.JSONDecodeError as error:
        raise BackupError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}); it may be truncated."
        ) from None
    except RecursionError:
        raise BackupError(f"{path} nests its JSON too deeply: not a Tracker backup.") from None
    check_backup(data)
    return data


def read_at_most(stream, max_bytes, path):
    """Read `stream` whole, refusing it as soon as it passes `max_bytes`."""
    chunks, size = [], 0
    while chunk := stream.read(READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise BackupError(
                f"{path} holds more than {max_bytes // (1024 * 1024)} MB of JSON once "
                "decompressed; if it really is a backup this large, raise --max-size."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def check_backup(data):
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError("This file is not a Tracker backup (no tracker-backup header).")
    if data.get("version") != VERSION:
        raise BackupError(
            f"This backup has format version {data.get('version')!r}; this Tracker reads "
            f"version {VERSION}."
        )
    objects, counts = data.get("objects"), data.get("counts")
    if not isinstance(objects, list) or not isinstance(counts, dict):
        raise BackupError("This backup lacks its objects or their counts.")
    if not all(isinstance(item, dict) and isinstance(item.get("model"), str) for item in objects):
        raise BackupError("This backup holds entries that are not serialized objects.")
    models = {model._meta.label_lower: model for model in tracked_models()}
    models[AUDIT_LABEL] = LogEntry
    unknown = sorted({item["model"] for item in objects} - set(models))
    if unknown:
        raise BackupError(f"This backup holds unknown models: {', '.join(unknown)}.")
    users = data.get("users", [])
    if not isinstance(users, list) or not all(isinstance(name, str) for name in users):
        raise BackupError("This backup's list of users is not a list of usernames.")
    for number, item in enumerate(objects, start=1):
        if problem := shape_problem(models[item["model"]], item):
            raise BackupError(f"Object {number} of this backup ({item['model']}): {problem}.")
    if not all(isinstance(count, int) for count in counts.values()):
        raise BackupError("This backup's counts are not whole numbers.")
    found = Counter(item["model"] for item in objects)
    for label, expected in counts.items():
        if found[label] != expected:
            raise BackupError(
                f"This backup is incomplete: its header lists {expected} {label} objects but "
                f"it holds {found[label]}."
            )


def shape_problem(model, item):
    """What is wrong with the shape of one serialized object, or None: the types the
    deserializer expects, so a crafted file gets a reason instead of a traceback."""
    if not isinstance(item.get("pk"), int | str) or isinstance(item.get("pk"), bool):
        return "its primary key is not a number"
    fields = item.get("fields")
    if not isinstance(fields, dict):
        return "its fields are not an object"
    for name, value in fields.items():
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return f"it has no field {name!r}"
        if field.many_to_many:
            if not isinstance(value, list) or not all(is_key(key) for key in value):
                return f"{name} is not a list of keys"
        elif field.is_relation:
            if value is not None and not is_key(value):
                return f"{name} is not a key"
        elif field.get_internal_type() != "JSONField" and not isinstance(value, SCALARS):
            return f"{name} is not a plain value"
    return None


def is_key(value):
    """A primary key, or a natural key (a list of plain values)."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(part, SCALARS) for part in value)
    return isinstance(value, int | str) and not isinstance(value, bool)


def has_tracked_data():
    return any(model._default_manager.exists() for model in tracked_models())


def tracked_tables():
    """Every table of the app, claims included: a restore that replaces the data empties them
    all, in one statement."""
    tables = []
    for model in apps.get_app_config("tracker").get_models():
        tables.append(model._meta.db_table)
        for field in model._meta.local_many_to_many:
            through = field.remote_field.through
            if through._meta.auto_created:
                tables.append(through._meta.db_table)
    return tables


def restore_data(data, *, replace=False, allow_empty=False, progress=None):
    """Restore a checked backup (see read_backup) into this database; return the counts.

    1. All or nothing: one transaction, rolled back on any error.
    2. A database that already tracks something is refused, unless `replace`, which first
       empties the tracker's tables (user accounts are kept).
    3. Rows are saved raw, as loaddata does: no save() rules run, so the append-only
       history is restored as it was, not re-recorded; foreign keys are checked at the end.
    4. The progress ledger is rebuilt from the restored history.
    5. The primary key sequences are moved past the restored rows.
    6. A backup with nothing in it never empties a database, unless `allow_empty`.
    7. Accounts are never taken from the file (see unlink_foreign_subscriptions).

    Returns the counts by model, and the number of subscriptions unlinked from accounts.
    """
    check_backup(data)
    try:
        with transaction.atomic():
            if has_tracked_data():
                if not replace:
                    raise BackupError(
                        "This database already holds tracked data: restore into an empty one, "
                        "or pass --replace to delete it first."
                    )
                if not data["objects"] and not allow_empty:
                    raise BackupError(
                        "This backup is empty: restoring it would delete everything tracked "
                        "here. Pass --allow-empty if that is what you want."
                    )
                empty_tracked_tables()
            # Entries left by rows deleted here name ids the restored rows are about to take.
            audit_entries().delete()
            existing_users = existing_usernames(data.get("users", []))
            create_missing_users(data.get("users", []))
            counts, waiting = Counter(), []
            # The file's audit trail is restored; the restore itself adds none (it would say
            # every row was "created" now, by nobody).
            with connection.constraint_checks_disabled(), disable_auditlog():
                for restored in serializers.deserialize(
                    "python", data["objects"], handle_forward_references=True
                ):
                    restored.save()
                    if restored.deferred_fields:
                        waiting.append(restored)
                    label = restored.object._meta.label_lower
                    counts[label] += 1
                    if progress and counts[label] == data["counts"].get(label):
                        progress(label, counts[label])
                for restored in waiting:  # links to rows that came later in the file
                    restored.save_deferred_fields()
            connection.check_constraints(table_names=tracked_tables())
            unlinked = unlink_foreign_subscriptions(existing_users)
            note_data_changed()  # a flush sends no signals: cached pages must not outlive it
            rebuild_ledger()  # raw saves wrote history past record_status
            with connection.cursor() as cursor:
                for sql in connection.ops.sequence_reset_sql(no_style(), tracked_models()):
                    cursor.execute(sql)
    except (DeserializationError, ValidationError, ValueError, TypeError) as error:
        raise BackupError(f"This backup holds an object that cannot be restored: {error}") from None
    except RecursionError:
        raise BackupError("This backup holds a value nested too deeply to restore.") from None
    except (IntegrityError, DatabaseError) as error:
        raise BackupError(f"This backup is inconsistent; nothing was restored ({error}).") from None
    return dict(counts), unlinked


def empty_tracked_tables():
    # Deferred foreign key checks still pending in this transaction would block a TRUNCATE.
    connection.check_constraints()
    # The replaced rows' history goes with them: their ids are about to name other rows.
    audit_entries().delete()
    with connection.cursor() as cursor:
        for sql in connection.ops.sql_flush(no_style(), tracked_tables()):
            cursor.execute(sql)


def existing_usernames(usernames):
    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    return set(
        user_model._default_manager.filter(**{f"{field}__in": usernames}).values_list(
            field, flat=True
        )
    )


def unlink_foreign_subscriptions(existing_users):
    """Unlink restored subscriptions from accounts that were here before the restore, unless
    the subscription's address is the account's own; return how many were unlinked.

    A staff member's subscription mails staff-only work; a file must not be able to point an
    outside address at an account of this site. Accounts the restore created are inactive and
    hold no rights, so their links are kept.
    """
    user_model = get_user_model()
    linked = Subscription.objects.filter(
        **{f"user__{user_model.USERNAME_FIELD}__in": existing_users}
    ).select_related("user")
    foreign = [s.pk for s in linked if s.email.casefold() != (s.user.email or "").casefold()]
    return Subscription.objects.filter(pk__in=foreign).update(user=None)


def create_missing_users(usernames):
    """Create an inactive account, without a password, for each username not known here."""
    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    for name in sorted(set(usernames) - existing_usernames(usernames)):
        user = user_model(**{field: name}, is_active=False)
        user.set_unusable_password()
        user.save()
