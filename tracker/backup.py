"""Back up and restore everything Tracker tracks, as one JSON file (gzipped if named .gz).

The file is Django's own serialization of every model of the tracker app (publishers,
agencies, themes, documents, recommendations with owners and themes, status history with
cited evidence, evidence, sources and kept versions, alerts, feed entries, webhooks and
their deliveries), under a header that names the format, its version and how many objects
of each model it holds. Primary keys are kept, so links survive; users are referred to by
username (natural keys) and are not themselves backed up: a restore links history to the
accounts of the same name, creating inactive ones for names it does not know.
"""

import datetime
import gzip
import json
import zlib
from collections import Counter
from pathlib import Path

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from .caching import note_data_changed

FORMAT = "tracker-backup"
# Bump when a change to the models makes old files unreadable without a conversion.
VERSION = 1


class BackupError(Exception):
    """A backup that cannot be written or restored, with a message for the person running it."""


class Encoder(DjangoJSONEncoder):
    # DjangoJSONEncoder rounds times to milliseconds; a backup keeps every microsecond.
    def default(self, o):
        if isinstance(o, datetime.datetime | datetime.time):
            return o.isoformat()
        return super().default(o)


def tracked_models():
    """The tracker app's models, parents before the rows that point at them."""
    return list(apps.get_app_config("tracker").get_models())


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


def read_backup(path):
    """Return the backup in `path`, checked: the right format and version, and complete."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"No such file: {path}.")
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gzipped else open)(path, "rt", encoding="utf-8") as source:
            data = json.load(source)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise BackupError(f"{path} is a damaged or truncated gzip file ({error}).") from None
    except UnicodeDecodeError:
        raise BackupError(f"{path} is not UTF-8 text: not a Tracker backup.") from None
    except json.JSONDecodeError as error:
        raise BackupError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}); it may be truncated."
        ) from None
    check_backup(data)
    return data


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
    if not all(isinstance(item, dict) and "model" in item for item in objects):
        raise BackupError("This backup holds entries that are not serialized objects.")
    known = {model._meta.label_lower for model in tracked_models()}
    unknown = sorted({item["model"] for item in objects} - known)
    if unknown:
        raise BackupError(f"This backup holds unknown models: {', '.join(unknown)}.")
    found = Counter(item["model"] for item in objects)
    for label, expected in counts.items():
        if found[label] != expected:
            raise BackupError(
                f"This backup is incomplete: its header lists {expected} {label} objects but "
                f"it holds {found[label]}."
            )


def has_tracked_data():
    return any(model._default_manager.exists() for model in tracked_models())


def tracked_tables():
    tables = []
    for model in tracked_models():
        tables.append(model._meta.db_table)
        for field in model._meta.local_many_to_many:
            through = field.remote_field.through
            if through._meta.auto_created:
                tables.append(through._meta.db_table)
    return tables


def restore_data(data, *, replace=False, progress=None):
    """Restore a checked backup (see read_backup) into this database; return the counts.

    1. All or nothing: one transaction, rolled back on any error.
    2. A database that already tracks something is refused, unless `replace`, which first
       empties the tracker's tables (user accounts are kept).
    3. Rows are saved raw, as loaddata does: no save() rules run, so the append-only
       history is restored as it was, not re-recorded; foreign keys are checked at the end.
    4. The primary key sequences are moved past the restored rows.
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
                empty_tracked_tables()
            create_missing_users(data.get("users", []))
            counts, waiting = Counter(), []
            with connection.constraint_checks_disabled():
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
            note_data_changed()  # a flush sends no signals: cached pages must not outlive it
            with connection.cursor() as cursor:
                for sql in connection.ops.sequence_reset_sql(no_style(), tracked_models()):
                    cursor.execute(sql)
    except DeserializationError as error:
        raise BackupError(f"This backup holds an object that cannot be restored: {error}") from None
    except (IntegrityError, DatabaseError) as error:
        raise BackupError(f"This backup is inconsistent; nothing was restored ({error}).") from None
    return dict(counts)


def empty_tracked_tables():
    # Deferred foreign key checks still pending in this transaction would block a TRUNCATE.
    connection.check_constraints()
    with connection.cursor() as cursor:
        for sql in connection.ops.sql_flush(no_style(), tracked_tables()):
            cursor.execute(sql)


def create_missing_users(usernames):
    """Create an inactive account, without a password, for each username not known here."""
    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    known = set(
        user_model._default_manager.filter(**{f"{field}__in": usernames}).values_list(
            field, flat=True
        )
    )
    for name in sorted(set(usernames) - known):
        user = user_model(**{field: name}, is_active=False)
        user.set_unusable_password()
        user.save()
