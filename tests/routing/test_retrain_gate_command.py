"""manage.py retrain_gate retrains in-process and prints the result as indented JSON."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command("retrain_gate", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_result_as_indented_json():
    # given: no history, so there is nothing to learn from

    # when
    printed = _run()

    # then
    result = json.loads(printed)
    assert result["trained"] is False
    assert printed.startswith('{\n  "')


def test_max_examples_is_passed_on(monkeypatch):
    asked = []
    monkeypatch.setattr(
        "routing.management.commands.retrain_gate.retrain_gate",
        lambda max_examples=None: asked.append(max_examples) or {"trained": False},
    )

    _run("--max-examples", "5000")

    assert asked == [5000]


@pytest.mark.parametrize("value", ["0", "lots"])
def test_a_bad_max_examples_is_refused(value):
    with pytest.raises(CommandError, match="max-examples"):
        _run("--max-examples", value)
