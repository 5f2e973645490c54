"""Who is an operator: staff, members of the operators group, holders of operate_router."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission

from registry.constants import OPERATOR_PERMISSIONS
from registry.permissions import ensure_operator_group, is_operator

pytestmark = pytest.mark.django_db


def test_the_migrations_create_the_operators_group_with_the_operator_permissions():
    group = Group.objects.get(name=settings.MOE_OPERATOR_GROUP)
    held = set(group.permissions.values_list("content_type__app_label", "codename"))
    assert {f"{app}.{codename}" for app, codename in held} == set(OPERATOR_PERMISSIONS)
    assert ("registry", "operate_router") in held
    assert ("routing", "view_routingdecision") in held
    assert ("routing", "change_routingdecision") not in held


def test_ensure_operator_group_restores_missing_permissions():
    group = Group.objects.get(name=settings.MOE_OPERATOR_GROUP)
    group.permissions.clear()
    assert ensure_operator_group() == group
    assert group.permissions.count() == len(OPERATOR_PERMISSIONS)


def test_personas(operator, staff, client_user):
    assert is_operator(operator)
    assert is_operator(staff)
    assert not is_operator(client_user)


def test_anonymous_and_inactive_users_are_not_operators(django_user_model, staff):
    from django.contrib.auth.models import AnonymousUser

    staff.is_active = False
    assert not is_operator(staff)
    assert not is_operator(AnonymousUser())
    assert not is_operator(None)


def test_the_operate_router_permission_alone_makes_an_operator(django_user_model):
    user = django_user_model.objects.create_user("perm-holder")
    user.user_permissions.add(Permission.objects.get(codename="operate_router"))
    assert is_operator(django_user_model.objects.get(pk=user.pk))


def test_a_superuser_is_an_operator(django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x-long-pass-1")
    assert is_operator(root)
