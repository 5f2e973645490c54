"""Request features: one request or a batch becomes rows of a float32 matrix, same code path.

Layout of a row (``FEATURE_DIM`` = 128 columns):

====================  =======  ==============================================================
block                 columns  content
====================  =======  ==============================================================
type                  0-15     one-hot of the hashed request type (all zero when no type)
scalars               16-23    priority, complexity, log payload size, anomaly score, has
                               anomaly score, has key, number of capabilities / 8, bias 1.0
capabilities          24-55    multi-hot of the hashed required capabilities
tokens                56-127   hashed token counts, scaled so a row's token block has norm ~1
====================  =======  ==============================================================

Hashing is crc32 (stable across processes, unlike ``hash()``) and cached. The gate hashes a
service's type and capabilities into the same type and capability columns, so a request and
a service that share a capability light up the same column.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from routing.core.types import RouteRequest

TYPE_BUCKETS = 16
SCALAR_COLUMNS = 8
CAPABILITY_BUCKETS = 32
TOKEN_BUCKETS = 72

TYPE_OFFSET = 0
SCALAR_OFFSET = TYPE_OFFSET + TYPE_BUCKETS
CAPABILITY_OFFSET = SCALAR_OFFSET + SCALAR_COLUMNS
TOKEN_OFFSET = CAPABILITY_OFFSET + CAPABILITY_BUCKETS
FEATURE_DIM = TOKEN_OFFSET + TOKEN_BUCKETS

TYPE_SLICE = slice(TYPE_OFFSET, TYPE_OFFSET + TYPE_BUCKETS)
CAPABILITY_SLICE = slice(CAPABILITY_OFFSET, CAPABILITY_OFFSET + CAPABILITY_BUCKETS)
TOKEN_SLICE = slice(TOKEN_OFFSET, TOKEN_OFFSET + TOKEN_BUCKETS)

# Payloads are tokenised only when the caller gave no tokens; cap the work per request.
MAX_PAYLOAD_TOKENS = 64
# log1p(payload bytes) / this keeps a 10 MB payload near 1.0.
_PAYLOAD_LOG_SCALE = 16.0


def _bucket(namespace: bytes, value: str, buckets: int) -> int:
    return zlib.crc32(namespace + value.encode("utf-8")) % buckets


@lru_cache(maxsize=4096)
def type_column(request_type: str) -> int:
    """Column of a request (or service) type; -1 for no type."""
    if not request_type:
        return -1
    return TYPE_OFFSET + _bucket(b"type:", request_type, TYPE_BUCKETS)


@lru_cache(maxsize=4096)
def capability_column(capability: str) -> int:
    return CAPABILITY_OFFSET + _bucket(b"cap:", capability, CAPABILITY_BUCKETS)


@lru_cache(maxsize=8192)
def capability_columns(capabilities: tuple[str, ...] | frozenset[str]) -> tuple[int, ...]:
    """Distinct columns of a set of capabilities (several may share a bucket)."""
    return tuple(sorted({capability_column(c) for c in capabilities}))


@lru_cache(maxsize=65536)
def token_column(token: str) -> int:
    return TOKEN_OFFSET + _bucket(b"tok:", token, TOKEN_BUCKETS)


def payload_tokens(payload: Any) -> tuple[str, ...]:
    """Tokens of a payload when the caller supplied none: words of a string, keys of a dict."""
    if isinstance(payload, str):
        return tuple(payload.split()[:MAX_PAYLOAD_TOKENS])
    if isinstance(payload, dict):
        return tuple(str(k) for k in list(payload)[:MAX_PAYLOAD_TOKENS])
    return ()


def featurize(requests: Sequence[RouteRequest]) -> np.ndarray:
    """Rows of features, shape ``(len(requests), FEATURE_DIM)``, dtype float32."""
    n = len(requests)
    out = np.zeros((n, FEATURE_DIM), dtype=np.float32)
    if n == 0:
        return out
    scalars = np.array(
        [
            (
                r.priority,
                r.complexity,
                math.log1p(max(r.payload_size, 0)) / _PAYLOAD_LOG_SCALE,
                r.anomaly_score or 0.0,
                r.anomaly_score is not None,
                r.key is not None,
                min(len(r.capabilities), 8) / 8.0,
                1.0,
            )
            for r in requests
        ],
        dtype=np.float32,
    )
    out[:, SCALAR_OFFSET : SCALAR_OFFSET + SCALAR_COLUMNS] = scalars

    rows: list[int] = []
    cols: list[int] = []
    token_rows: list[int] = []
    token_cols: list[int] = []
    token_vals: list[float] = []
    for i, r in enumerate(requests):
        col = type_column(r.request_type)
        if col >= 0:
            rows.append(i)
            cols.append(col)
        if r.capabilities:
            for col in capability_columns(r.capabilities):
                rows.append(i)
                cols.append(col)
        tokens = r.tokens or (payload_tokens(r.payload) if r.payload is not None else ())
        if tokens:
            scale = 1.0 / math.sqrt(len(tokens))
            for token in tokens:
                token_rows.append(i)
                token_cols.append(token_column(token))
                token_vals.append(scale)
    if rows:
        out[rows, cols] = 1.0
    if token_rows:
        np.add.at(out, (token_rows, token_cols), np.asarray(token_vals, dtype=np.float32))
    return out
