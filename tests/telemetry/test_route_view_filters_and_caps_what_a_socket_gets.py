"""RouteView: what one live-feed socket receives of a published route flush."""

import orjson
import pytest

from telemetry.consumers import (
    EACH_MAX_PER_SECOND,
    RouteView,
    SubscriptionError,
    subscription_options,
)
from tests.support.clock import FakeClock


def flush(*clients, dropped=0, ts=5.0) -> str:
    events = [
        {
            "request_id": f"r{i}",
            "selected_services": [f"svc-{i}"],
            "routing_strategy": "semantic",
            "latency_ms": 0.05,
            "client": client,
        }
        for i, client in enumerate(clients)
    ]
    return orjson.dumps({"type": "route", "events": events, "dropped": dropped, "ts": ts}).decode()


def test_an_operator_in_batch_mode_gets_the_published_text_as_is():
    assert RouteView(None, "batch", 50).forwards_as_is
    assert not RouteView("7", "batch", 50).forwards_as_is
    assert not RouteView(None, "each", 50).forwards_as_is


def test_a_client_gets_only_its_own_decisions_and_its_own_dropped_count():
    view = RouteView("7", "batch", 50)

    (message,) = view.messages(flush(7, 8, 7, None, dropped=9), {"7": 2, "8": 7})

    assert [e["request_id"] for e in message["events"]] == ["r0", "r2"]
    assert message["dropped"] == 2
    assert message["type"] == "route" and message["ts"] == 5.0


def test_a_client_gets_nothing_from_a_flush_of_other_clients():
    assert RouteView("7", "batch", 50).messages(flush(8, None), {"8": 3}) == []


def test_each_mode_sends_one_message_per_decision_shaped_like_the_spec():
    view = RouteView(None, "each", 50)

    messages = view.messages(flush(1, 2), {})

    assert [m["selected_services"] for m in messages] == [["svc-0"], ["svc-1"]]
    first = messages[0]
    assert first["type"] == "route"
    assert first["routing_strategy"] == "semantic"
    assert first["latency_ms"] == 0.05
    assert first["dropped"] == 0


def test_each_mode_is_rate_capped_and_counts_what_it_left_out():
    clock = FakeClock(1000.0)
    view = RouteView(None, "each", 5, clock=clock)

    burst = view.messages(flush(*range(12), dropped=3), {})
    clock.now += 0.5  # two and a half more messages' worth
    later = view.messages(flush(*range(4)), {})

    # the newest five of the burst; the first message after the cap names what was left out
    assert [m["request_id"] for m in burst] == ["r7", "r8", "r9", "r10", "r11"]
    assert [m["dropped"] for m in burst] == [10, 0, 0, 0, 0]
    assert [m["request_id"] for m in later] == ["r2", "r3"]
    assert [m["dropped"] for m in later] == [2, 0]
    clock.now += 100  # the bucket holds at most one second's worth
    assert len(view.messages(flush(*range(20)), {})) == 5


@pytest.mark.parametrize(
    "options, field",
    [
        ({"mode": "all"}, "mode"),
        ({"max_per_second": 0}, "max_per_second"),
        ({"max_per_second": EACH_MAX_PER_SECOND + 1}, "max_per_second"),
        ({"max_per_second": "ten"}, "max_per_second"),
        ({"max_per_second": True}, "max_per_second"),
    ],
)
def test_bad_subscription_options_name_the_field(options, field):
    with pytest.raises(SubscriptionError) as error:
        subscription_options(options, ("batch", 50))
    assert error.value.field == field


def test_url_options_arrive_as_strings():
    assert subscription_options({"mode": "each", "max_per_second": "20"}, ("batch", 50)) == (
        "each",
        20,
    )
    assert subscription_options({}, ("batch", 50)) == ("batch", 50)
