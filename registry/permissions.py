"""Who may operate the router: staff, or users holding ``registry.operate_router``.

The operators group (``settings.MOE_OPERATOR_GROUP``, created by a data migration) holds that
permission plus add/change/delete/view on services and capabilities.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from registry.constants import OPERATE_ROUTER_PERMISSION, OPERATOR_PERMISSION_CODENAMES


def is_operator(user) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return user.is_staff or user.has_perm(OPERATE_ROUTER_PERMISSION)


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


def ensure_operator_group():
    """Get or create the operators group and make sure it holds the operator permissions."""
    from django.conf import settings
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=settings.MOE_OPERATOR_GROUP)
    wanted = Permission.objects.filter(
        content_type__app_label="registry", codename__in=OPERATOR_PERMISSION_CODENAMES
    )
    group.permissions.add(*wanted)  # adds only what is missing
    return group
