"""Featurisation: fixed width, same rows for one request or a batch, hashed columns shared with
services."""

import numpy as np

from routing.core import features as ft
from routing.core.types import RouteRequest
from tests.routing.core.fleets import requests


def test_one_request_and_a_batch_give_the_same_rows():
    batch = requests(40, seed=3, with_capabilities=True)
    together = ft.featurize(batch)
    assert together.shape == (40, ft.FEATURE_DIM)
    assert together.dtype == np.float32
    for i, request in enumerate(batch):
        np.testing.assert_array_equal(ft.featurize([request])[0], together[i])


def test_each_block_lands_in_its_columns():
    row = ft.featurize(
        [
            RouteRequest(
                request_type="inference",
                priority=0.8,
                complexity=0.25,
                capabilities=("gpu", "nlp"),
                key="k",
                anomaly_score=0.4,
                payload_size=1000,
                tokens=("hello", "world", "hello", "again"),
            )
        ]
    )[0]
    assert row[ft.TYPE_SLICE].sum() == 1.0
    assert row[ft.type_column("inference")] == 1.0
    scalars = row[ft.SCALAR_OFFSET : ft.SCALAR_OFFSET + ft.SCALAR_COLUMNS]
    assert np.allclose(scalars[[0, 1, 3, 4, 5, 7]], [0.8, 0.25, 0.4, 1, 1, 1])
    assert row[ft.capability_column("gpu")] == 1.0 and row[ft.capability_column("nlp")] == 1.0
    assert abs(row[ft.token_column("hello")] - 1.0) < 1e-6  # two of four tokens: 2 / sqrt(4)


def test_an_empty_request_and_an_empty_batch_are_fine():
    assert ft.featurize([]).shape == (0, ft.FEATURE_DIM)
    row = ft.featurize([RouteRequest()])[0]
    assert row[ft.TYPE_SLICE].sum() == 0 and row[ft.TOKEN_SLICE].sum() == 0


def test_payload_words_stand_in_for_missing_tokens():
    with_payload = ft.featurize([RouteRequest(payload="summarise this text")])[0]
    with_tokens = ft.featurize([RouteRequest(tokens=("summarise", "this", "text"))])[0]
    np.testing.assert_array_equal(with_payload, with_tokens)
