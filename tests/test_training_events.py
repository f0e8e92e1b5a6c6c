"""The one event queue behind both backtest clocks (the Trainer's and the QC-style
algorithm's): time order, registration order at equal times, lazy fire times."""

from __future__ import annotations

from datetime import datetime, timedelta

from alphazoo.training.events import EventQueue

T0 = datetime(2024, 1, 1)


def _drain(queue):
    out = []
    while (due := queue.pop()) is not None:
        out.append(due)
    return out


def test_items_come_out_in_time_order_and_by_registration_order_at_equal_times():
    queue = EventQueue()
    queue.add([T0 + timedelta(hours=h) for h in (1, 3)], "b", order=1)
    queue.add([T0 + timedelta(hours=h) for h in (1, 2)], "a", order=0)
    queue.add([T0 + timedelta(hours=1)], "c")  # no order: after those added before it
    assert _drain(queue) == [(T0 + timedelta(hours=1), "a"), (T0 + timedelta(hours=1), "b"),
                             (T0 + timedelta(hours=1), "c"), (T0 + timedelta(hours=2), "a"),
                             (T0 + timedelta(hours=3), "b")]
    assert len(queue) == 0


def test_fire_times_are_read_one_ahead_so_an_endless_rule_works():
    def every_hour():
        when = T0
        while True:
            when += timedelta(hours=1)
            yield when

    queue = EventQueue()
    queue.add(every_hour(), "tick")
    assert [queue.pop() for _ in range(3)] == [(T0 + timedelta(hours=h), "tick")
                                               for h in (1, 2, 3)]
    assert len(queue) == 1  # the next time is already queued


def test_an_inactive_item_is_dropped_with_the_rest_of_its_times():
    cancelled = set()
    queue = EventQueue(active=lambda item: item not in cancelled)
    queue.add([T0 + timedelta(days=d) for d in range(5)], "weekly")
    queue.add([T0 + timedelta(days=d) for d in (2, 4)], "other")
    assert queue.pop() == (T0, "weekly")
    cancelled.add("weekly")
    assert _drain(queue) == [(T0 + timedelta(days=2), "other"), (T0 + timedelta(days=4), "other")]


def test_items_that_do_not_compare_share_a_time_without_error():
    queue = EventQueue()
    first, second = object(), object()
    queue.add([T0], first, order=0)
    queue.add([T0], second, order=0)  # the same key: arrival breaks the tie
    assert [item for _, item in _drain(queue)] == [first, second]
