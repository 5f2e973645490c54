"""A test marked ``config_independent`` runs in the embedded-default pass and is skipped, with
its reason, in the PostgreSQL + Redis pass (the one with ``REDIS_URL``); no other test is."""

import pytest

from tests import conftest


class Item:
    def __init__(self, *markers: str) -> None:
        self.markers = set(markers)
        self.added: list = []

    def get_closest_marker(self, name: str):
        return name if name in self.markers else None

    def add_marker(self, marker) -> None:
        self.added.append(marker)


class Config:
    def __init__(self) -> None:
        self.stash = pytest.Stash()


def skipped(items: list[Item]) -> list[bool]:
    conftest.pytest_collection_modifyitems(Config(), items)
    return [
        any(m.name == "skip" and "embedded-default pass" in m.kwargs["reason"] for m in i.added)
        for i in items
    ]


def test_the_scale_out_pass_skips_only_the_marked_tests(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    items = [Item("config_independent"), Item("integration"), Item()]

    assert skipped(items) == [True, False, False]


def test_the_embedded_default_pass_runs_them(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    items = [Item("config_independent", "integration"), Item()]

    assert skipped(items) == [False, False]
