"""Data: the operators group also gets overrides, history (view), gate versions, schedules.

0002 gave it the registry permissions; an operator also needs the rest of the admin. Permissions
are normally created after all migrations (post_migrate); create them here so the group can
hold them on a fresh database. Reversing removes only what this migration added.
"""

from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen copy of the additions to registry.constants.OPERATOR_PERMISSIONS.
ADDED = {
    "routing": [
        "add_strategyoverride",
        "change_strategyoverride",
        "delete_strategyoverride",
        "view_strategyoverride",
        "view_routingdecision",
        "view_gatemodel",
        "change_gatemodel",
    ],
    "django_celery_beat": [
        "add_periodictask",
        "change_periodictask",
        "delete_periodictask",
        "view_periodictask",
        "add_intervalschedule",
        "change_intervalschedule",
        "delete_intervalschedule",
        "view_intervalschedule",
        "add_crontabschedule",
        "change_crontabschedule",
        "delete_crontabschedule",
        "view_crontabschedule",
    ],
}


def _added_permissions(apps, db):
    Permission = apps.get_model("auth", "Permission")
    found = []
    for app_label, codenames in ADDED.items():
        found += Permission.objects.using(db).filter(
            content_type__app_label=app_label, codename__in=codenames
        )
    return found


def add_permissions(apps, schema_editor):
    db = schema_editor.connection.alias
    for app_label in ADDED:
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True  # create_permissions skips apps without models
        create_permissions(app_config, apps=apps, verbosity=0, using=db)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.using(db).get_or_create(name=settings.MOE_OPERATOR_GROUP)
    group.permissions.add(*_added_permissions(apps, db))


def remove_permissions(apps, schema_editor):
    db = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    group = Group.objects.using(db).filter(name=settings.MOE_OPERATOR_GROUP).first()
    if group is not None:
        group.permissions.remove(*_added_permissions(apps, db))


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_operators_group"),
        ("routing", "0004_learning_fields"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_permissions, remove_permissions)]
