"""Fast, strict JSON for the API (orjson).

The parser refuses NaN, Infinity and numbers that overflow a double (``1e309``) with a 400
naming the body, and caps nesting depth so an absurdly nested payload is a clear error rather
than a recursion problem further down.
"""

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from moe_project.api_errors import APIError


def json_depth_exceeds(value, limit: int) -> bool:
    """True when ``value`` nests deeper than ``limit`` containers (iterative, no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


class OrjsonParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF reads the raw stream, bypassing Django's DATA_UPLOAD_MAX_MEMORY_SIZE check.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise APIError(
                "payload_too_large",
                f"Request body is larger than {limit} bytes.",
                {"body": [f"At most {limit} bytes."]},
                413,
            )
        if not raw:
            raise ParseError("Request body is empty; expected a JSON object.")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Body is not valid JSON: {exc}") from None
        # The body adds one level; payloads nested deeper than the limit are refused.
        if json_depth_exceeds(data, settings.MOE_MAX_JSON_DEPTH + 2):
            raise ParseError(f"JSON nests deeper than {settings.MOE_MAX_JSON_DEPTH} levels.")
        return data


def _default(value):
    return str(value)


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)
