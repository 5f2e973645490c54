"""DRF fields and a serializer base that are strict about JSON types and unknown fields.

DRF's defaults would turn ``123`` into ``"123"`` and ``"5"`` into ``5``, and ignore fields
they do not know: a client sending the wrong type or a misspelt field gets a 400 naming it.
"""

import math
from collections.abc import Mapping

from rest_framework import serializers
from rest_framework.fields import empty


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "Must be a finite number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        try:
            number = float(data)  # an int beyond 1e308 overflows here
        except OverflowError:
            self.fail("invalid")
        if not math.isfinite(number):
            self.fail("invalid")
        return number


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictBoolField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictSerializer(serializers.Serializer):
    """Refuses a body that is not an object and fields it does not know, naming them."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"body": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class QueryIntegerField(serializers.IntegerField):
    """A query-string integer written as plain ASCII digits; an empty value is not absent.

    (DRF's IntegerField also takes " 5", "5.0" and other scripts' digits, and treats
    ``?limit=`` as if the parameter were missing.)
    """

    default_error_messages = {"invalid": "Must be an integer (digits only)."}

    def get_value(self, dictionary):
        return dictionary.get(self.field_name, empty)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data.isascii() or not data.isdigit():
            self.fail("invalid")
        return super().to_internal_value(data)


class SingleValueQuerySerializer(serializers.Serializer):
    """Query parameters given at most once each (``?limit=1&limit=2`` is a 400 naming it)."""

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            repeated = sorted(name for name in self.fields if len(data.getlist(name)) > 1)
            if repeated:
                raise serializers.ValidationError(
                    {name: ["Give this parameter once."] for name in repeated}
                )
        return super().to_internal_value(data)
