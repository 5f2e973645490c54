"""One rule for the admin: whoever :func:`~registry.permissions.is_operator` may use it.

An operator is staff *or* a holder of ``registry.operate_router`` (the operators group), and
the API and the dashboard check exactly that. Django's admin checks something else: it admits
active staff only, and shows each of them the models they hold permissions on. Left alone, it
refused a group-only operator at the login and showed a staff-only operator nothing.

Two pieces make the admin follow the rule:

- :class:`OperatorPermissionBackend` (an authentication backend in ``settings``): an operator
  holds the operator permissions (``registry.constants.OPERATOR_PERMISSIONS``), as members of
  the operators group do, wherever Django asks ``user.has_perm`` (the admin's stock checks). A
  model admin's own stricter checks still decide: routing history stays read-only and gate
  versions cannot be added, for every operator alike. It authenticates nobody.
- :func:`admit_operators` makes the admin site, login included, admit operators and nobody
  else (``RegistryConfig.ready``).

Nothing is granted to a user who is not an operator, and nothing is written to the database.
"""

from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from registry.constants import OPERATOR_PERMISSIONS
from registry.permissions import is_operator

_OPERATOR_APPS = frozenset(name.split(".", 1)[0] for name in OPERATOR_PERMISSIONS)


class OperatorPermissionBackend(BaseBackend):
    """Operators hold the operator permissions; see the module docstring."""

    def authenticate(self, request, **credentials):
        return None

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if obj is not None or not is_operator(user_obj):
            return set()
        return set(OPERATOR_PERMISSIONS)

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return obj is None and perm in OPERATOR_PERMISSIONS and is_operator(user_obj)

    def has_module_perms(self, user_obj, app_label) -> bool:
        return app_label in _OPERATOR_APPS and is_operator(user_obj)


class OperatorLoginForm(AdminAuthenticationForm):
    """The admin login form, for operators rather than for staff only."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the correct %(username)s and password for an operator account. "
            "Note that both fields may be case-sensitive."
        ),
    }

    def confirm_login_allowed(self, user) -> None:
        # AuthenticationForm's check (active users only), not the admin's (staff only).
        AuthenticationForm.confirm_login_allowed(self, user)
        if not is_operator(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


def _operators_only(request) -> bool:
    return is_operator(request.user)


def admit_operators(site: AdminSite) -> None:
    """Make ``site`` (and its login) admit operators and nobody else."""
    # The default site is built by Django, so its admission check is set on the instance.
    site.has_permission = _operators_only
    site.login_form = OperatorLoginForm
