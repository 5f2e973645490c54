"""Who may operate the router: staff, or users holding ``registry.operate_router``.

The operators group (``settings.MOE_OPERATOR_GROUP``, created by data migrations) holds that
permission plus what the admin needs: services, capabilities, strategy overrides, routing
history (view only), gate versions (view, change for activate/rollback) and the Celery
schedules (``registry.constants.OPERATOR_PERMISSIONS``).

:func:`is_operator` is the one rule: the API, the dashboard, the live feed and the admin
(``registry/admin_access.py``, where a staff-only operator holds those permissions too) all
ask it.
"""

from django.contrib.auth.backends import ModelBackend
from rest_framework.permissions import SAFE_METHODS, BasePermission

from registry.constants import OPERATE_ROUTER_PERMISSION, OPERATOR_PERMISSIONS


def is_operator(user) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    # The permission as the database grants it (groups, superuser): not ``user.has_perm``,
    # which asks every backend, including the one that grants operators their permissions
    # because of this very rule (registry/admin_access.py).
    return user.is_staff or ModelBackend().has_perm(user, OPERATE_ROUTER_PERMISSION)


class IsOperator(BasePermission):
    """Operators only; anonymous users get 401, other users 403."""

    message = "Only operators may do this."

    def has_permission(self, request, view) -> bool:
        return is_operator(request.user)


class IsOperatorOrReadOnly(BasePermission):
    """Any authenticated user may read (GET, HEAD, OPTIONS); only operators may write."""

    message = "Only operators may change the registry."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or is_operator(user)


def operator_permissions():
    """The Permission rows of ``OPERATOR_PERMISSIONS`` (those that exist in this database)."""
    from django.contrib.auth.models import Permission
    from django.db.models import Q

    wanted = Q(pk__in=[])
    for name in OPERATOR_PERMISSIONS:
        app_label, codename = name.split(".", 1)
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    return Permission.objects.filter(wanted)


def ensure_operator_group():
    """Get or create the operators group holding exactly the operator permissions."""
    from django.conf import settings
    from django.contrib.auth.models import Group

    group, _ = Group.objects.get_or_create(name=settings.MOE_OPERATOR_GROUP)
    group.permissions.set(operator_permissions())  # adds what is missing, drops extras
    return group
