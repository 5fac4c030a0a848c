"""The two staff roles, as groups: Editor (records status changes and evidence, triages alerts)
and Viewer (reads everything staff see). Re-running sets the same permissions; reversing
removes the groups (their users keep their accounts)."""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

# What staff may read: the tracked work, its history and evidence, monitoring, the audit trail.
VIEWABLE = [
    "tracker.publisher",
    "tracker.agency",
    "tracker.theme",
    "tracker.document",
    "tracker.recommendation",
    "tracker.ownership",
    "tracker.evidence",
    "tracker.statuschange",
    "tracker.source",
    "tracker.sourceversion",
    "tracker.changealert",
    "tracker.feedentry",
    "auditlog.logentry",
]
VIEWER = [f"{label}.view_{model}" for label, model in (name.split(".") for name in VIEWABLE)]
EDITOR = [
    *VIEWER,
    # Recording a status change takes both (the admin's and the API's rule).
    "tracker.change_recommendation",
    "tracker.add_statuschange",
    "tracker.add_evidence",
    "tracker.change_evidence",
    # Triage: review change alerts and feed entries (which sources to watch is an admin's call).
    "tracker.change_changealert",
    "tracker.change_feedentry",
]
ROLES = {"Editor": EDITOR, "Viewer": VIEWER}


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    db = schema_editor.connection.alias
    # Permissions are otherwise created after all migrations ran (post_migrate): too late here.
    for label in ["tracker", "auditlog"]:
        create_permissions(global_apps.get_app_config(label), verbosity=0, using=db, apps=apps)
    for name, wanted in ROLES.items():
        permissions = []
        for dotted in wanted:
            app_label, codename = dotted.split(".")
            permissions.append(
                Permission.objects.using(db).get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group, _ = Group.objects.using(db).get_or_create(name=name)
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tracker", "0004_subscriptions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auditlog", "__first__"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
