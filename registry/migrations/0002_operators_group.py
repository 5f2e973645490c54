"""Data: the operators group (settings.MOE_OPERATOR_GROUP) with the registry permissions.

Permissions are normally created after all migrations (post_migrate); create them here so the
group can hold them on a fresh database. Reversing deletes the group.
"""

from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations

OPERATOR_CODENAMES = [
    "operate_router",
    "add_service",
    "change_service",
    "delete_service",
    "view_service",
    "add_capability",
    "change_capability",
    "delete_capability",
    "view_capability",
]


def create_operators_group(apps, schema_editor):
    db = schema_editor.connection.alias
    app_config = apps.get_app_config("registry")
    app_config.models_module = True  # create_permissions skips apps without models
    create_permissions(app_config, apps=apps, verbosity=0, using=db)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(db).get_or_create(name=settings.MOE_OPERATOR_GROUP)
    permissions = Permission.objects.using(db).filter(
        content_type__app_label="registry", codename__in=OPERATOR_CODENAMES
    )
    group.permissions.add(*permissions)


def delete_operators_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(
        name=settings.MOE_OPERATOR_GROUP
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_operators_group, delete_operators_group)]
