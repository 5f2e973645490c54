"""Fast, strict JSON for the API (orjson).

The parser refuses NaN, Infinity and numbers that overflow a double (``1e309``) with a 400
naming the body, and caps nesting depth so an absurdly nested payload is a clear error rather
than a recursion problem further down.
"""

import numpy as np
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


# +1 for an opening bracket, -1 for a closing one, 0 for any other byte.
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[[ord("["), ord("{")]] = 1
_BRACKET_STEP[[ord("]"), ord("}")]] = -1
# Every byte but the five that decide the depth: deleted before the numpy pass.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def nests_deeper(raw: bytes, data, limit: int) -> bool:
    """``json_depth_exceeds(data, limit)`` for ``data = orjson.loads(raw)``, from the bytes when
    it can: in valid JSON without backslashes, every ``"`` opens or closes a string, so the
    bracket depth outside strings is a cumulative sum (a 1,000-item batch: ~0.3 ms instead of
    ~2.5 ms of Python). Only quotes and brackets matter, so every other byte is deleted first
    (``bytes.translate``, C speed): the numpy pass then runs over ~1/5 of the body."""
    if b"\\" in raw or len(raw) < 4096:
        return json_depth_exceeds(data, limit)
    marks = np.frombuffer(raw.translate(None, _NOT_STRUCTURE), dtype=np.uint8)
    outside = (np.cumsum(marks == ord('"')) & 1) == 0
    steps = _BRACKET_STEP[marks]
    steps[~outside] = 0
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0)) > limit


def payload_too_large() -> APIError:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return APIError(
        "payload_too_large",
        f"Request body is larger than {limit} bytes.",
        {"body": [f"At most {limit} bytes."]},
        413,
    )


# Levels of a body around its payload: ``{"data": {"data": <payload>}}`` (a route), and one
# more for a batch, ``{"requests": [{"data": <payload>}]}``: a payload may nest
# MOE_MAX_JSON_DEPTH levels in either (the schema says so of ``data``).
ENVELOPE_LEVELS = 2
BATCH_ENVELOPE_LEVELS = 3


def load_json_body(raw: bytes, envelope: int = ENVELOPE_LEVELS):
    """A non-empty request body decoded by the API's rules: 400 (``ParseError``) when it is
    not valid JSON or nests deeper than ``MOE_MAX_JSON_DEPTH`` plus ``envelope`` levels."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"Body is not valid JSON: {exc}") from None
    if nests_deeper(raw, data, settings.MOE_MAX_JSON_DEPTH + envelope):
        raise ParseError(f"JSON nests deeper than {settings.MOE_MAX_JSON_DEPTH} levels.")
    return data


class OrjsonParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF reads the raw stream, bypassing Django's DATA_UPLOAD_MAX_MEMORY_SIZE check.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise payload_too_large()
        if not raw:
            raise ParseError("Request body is empty; expected a JSON object.")
        view = (parser_context or {}).get("view")
        return load_json_body(raw, getattr(view, "json_envelope_levels", ENVELOPE_LEVELS))


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
