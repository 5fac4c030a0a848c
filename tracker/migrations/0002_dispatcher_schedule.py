"""Schedule the source-check dispatcher every minute, in django-celery-beat's tables, so staff
can see and edit it in the admin."""

from django.db import migrations

DISPATCHER_NAME = "Dispatch due source checks"


def schedule_dispatcher(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=DISPATCHER_NAME,
        defaults={"task": "tracker.tasks.dispatch_due_sources", "interval": every_minute},
    )


def unschedule_dispatcher(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name=DISPATCHER_NAME
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tracker", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_dispatcher, unschedule_dispatcher)]
