"""Database helpers below the models: they import nothing of the app, so any module may use
them without an import circle."""

from django.db import connection


def update_each(objects, field_names):
    """Save `field_names` of each of `objects` (instances of one model), each row its own
    values, in one round trip: one prepared UPDATE per row, sent with `executemany`.

    Not `bulk_update`: its CASE expression costs about 1.5 ms of CPU a row to build, more
    than fetching and extracting a page or sending a mail, while one prepared UPDATE sent for
    each row (psycopg pipelines them) costs under 0.1 ms.
    """
    objects = list(objects)
    if not objects:
        return
    meta = type(objects[0])._meta
    fields = [meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in fields]
        + [obj.pk]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
