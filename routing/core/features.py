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


@lru_cache(maxsize=16384)
def _sparse_part(
    request_type: str, capabilities: tuple[str, ...], tokens: tuple[str, ...]
) -> np.ndarray:
    """The type, capability and token blocks of a row (scalars left at zero); read-only."""
    row = np.zeros(FEATURE_DIM, dtype=np.float32)
    col = type_column(request_type)
    if col >= 0:
        row[col] = 1.0
    if capabilities:
        row[list(capability_columns(capabilities))] = 1.0
    if tokens:
        scale = np.float32(1.0 / math.sqrt(len(tokens)))
        for token in tokens:
            row[token_column(token)] += scale
    row.flags.writeable = False
    return row


def featurize(requests: Sequence[RouteRequest]) -> np.ndarray:
    """Rows of features, shape ``(len(requests), FEATURE_DIM)``, dtype float32."""
    n = len(requests)
    if n == 0:
        return np.zeros((0, FEATURE_DIM), dtype=np.float32)
    # Requests with the same type, capabilities and tokens share their sparse blocks: build
    # each distinct block once (cached across calls) and gather them in one take.
    distinct: dict[tuple, int] = {}
    group = []
    for r in requests:
        tokens = r.tokens or (payload_tokens(r.payload) if r.payload is not None else ())
        key = (r.request_type, r.capabilities, tokens)
        g = distinct.get(key)
        if g is None:
            g = distinct[key] = len(distinct)
        group.append(g)
    blocks = np.stack([_sparse_part(*key) for key in distinct])
    out = blocks.take(group, axis=0)

    raw = np.array(
        [
            (
                r.priority,
                r.complexity,
                r.payload_size,
                -1.0 if r.anomaly_score is None else r.anomaly_score,
                r.key is not None,
                len(r.capabilities),
            )
            for r in requests
        ],
        dtype=np.float64,
    )
    scalars = out[:, SCALAR_OFFSET : SCALAR_OFFSET + SCALAR_COLUMNS]
    scalars[:, 0] = raw[:, 0]
    scalars[:, 1] = raw[:, 1]
    scalars[:, 2] = np.log1p(np.maximum(raw[:, 2], 0.0)) / _PAYLOAD_LOG_SCALE
    has_anomaly = raw[:, 3] >= 0
    scalars[:, 3] = np.where(has_anomaly, raw[:, 3], 0.0)
    scalars[:, 4] = has_anomaly
    scalars[:, 5] = raw[:, 4]
    scalars[:, 6] = np.minimum(raw[:, 5], 8.0) / 8.0
    scalars[:, 7] = 1.0
    return out
