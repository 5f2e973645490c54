"""simplejwt's token views, as strict about their input as every other endpoint.

simplejwt's serializers turn ``5`` into ``"5"`` (a wrong type then reads as a bad login or a
bad token: 401) and ignore fields they do not know. These subclasses refuse both with a 400
naming the field, and a body that is not a JSON object with a 400 naming ``body``, as
``StrictSerializer`` does elsewhere; signing, checking and the answers stay simplejwt's.
"""

from rest_framework import serializers
from rest_framework_simplejwt.serializers import (
    PasswordField,
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
    TokenVerifySerializer,
)
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView

from moe_project.strict_serializers import StrictCharField, StrictSerializer


class StrictPasswordField(PasswordField, StrictCharField):
    """A password as typed: spaces around it are part of it, as at the admin login (Django's
    AuthenticationForm does not strip), not trimmed as DRF's CharField would."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(*args, **kwargs)


class _StrictTokenSerializer(StrictSerializer):
    def run_validation(self, data=serializers.empty):
        # JSON ``null`` (or no body) would otherwise be DRF's "No data provided" on
        # non_field_errors, before StrictSerializer sees it.
        if data is None or data is serializers.empty:
            raise serializers.ValidationError({"body": ["Expected a JSON object."]})
        return super().run_validation(data)


class StrictTokenObtainPairSerializer(_StrictTokenSerializer, TokenObtainPairSerializer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields[self.username_field] = StrictCharField(write_only=True)
        self.fields["password"] = StrictPasswordField()


class StrictTokenRefreshSerializer(_StrictTokenSerializer, TokenRefreshSerializer):
    refresh = StrictCharField()
    access = None  # an answer, not an input: sending it is an unknown field


class StrictTokenVerifySerializer(_StrictTokenSerializer, TokenVerifySerializer):
    token = StrictCharField(write_only=True)


class StrictTokenObtainPairView(TokenObtainPairView):
    serializer_class = StrictTokenObtainPairSerializer


class StrictTokenRefreshView(TokenRefreshView):
    serializer_class = StrictTokenRefreshSerializer


class StrictTokenVerifyView(TokenVerifyView):
    serializer_class = StrictTokenVerifySerializer
