"""drf-spectacular extensions: the stateless JWT scheme the hot endpoints use, and strict
serializers (unknown fields refused) described as such."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import (
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)


class StatelessJWTScheme(SimpleJWTScheme):
    target_class = "moe_project.authentication.CachedStatelessJWTAuthentication"
    name = "jwtStatelessAuth"
    priority = 1  # before SimpleJWTScheme, which also matches subclasses


class StrictSerializerScheme(OpenApiSerializerExtension):
    """A strict serializer refuses fields it does not know: say so in the schema."""

    target_class = "moe_project.strict_serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema


# DRF refuses NUL characters in every CharField; surrounding whitespace is trimmed (Python's
# str.strip, whose whitespace is not regex \s: it has \x1c-\x1f and \x85, not \ufeff), so a
# non-blank string needs a character that is neither.
NO_NUL_PATTERN = r"^[^\x00]*$"
_PY_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NON_BLANK_PATTERN = rf"^[^\x00]*[^\x00{_PY_SPACE}][^\x00]*$"


class StrictCharFieldScheme(OpenApiSerializerFieldExtension):
    """What DRF's CharField refuses besides the length: NUL characters, blank values."""

    target_class = "moe_project.strict_serializers.StrictCharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        # The field's own mapping (not this extension again): a CharField with its limits.
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if "pattern" not in schema:
            blank_ok = field.allow_blank or not field.trim_whitespace
            schema["pattern"] = NO_NUL_PATTERN if blank_ok else NON_BLANK_PATTERN
        return schema
