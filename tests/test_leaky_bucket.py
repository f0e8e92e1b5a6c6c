"""LeakyBucket (alphazoo.training.bucket): LEAN's LeakyBucketTests and
FixedIntervalRefillStrategyTests ported, plus configuration, errors and thread safety."""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime, timedelta

import pytest

from alphazoo.training.bucket import LeakyBucket

MINUTE = timedelta(minutes=1)


class ManualClock:
    """A clock a test moves by hand (LEAN's ManualTimeProvider); safe to advance from any
    thread."""

    def __init__(self, start: datetime = datetime(2000, 1, 1)) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, step: timedelta) -> None:
        with self._lock:
            self._now += step


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


# -- LEAN's cases -------------------------------------------------------------------------------

def test_bucket_starts_full():
    assert LeakyBucket(10, 1, timedelta(seconds=1)).available == 10


def test_leans_defaults():
    bucket = LeakyBucket()
    assert bucket.capacity == 120
    assert bucket.available == 120
    assert bucket.interval == timedelta(minutes=1440)
    assert bucket.refill_amount == 18 == math.ceil(120 / 7)
    assert LeakyBucket(10).refill_amount == 2


def test_consume_blocks_until_tokens_are_available(clock):
    capacity, refill = 10, 1
    bucket = LeakyBucket(capacity, refill, MINUTE, clock=clock)
    bucket.consume(capacity // 2)
    assert bucket.available == capacity // 2

    started, done = threading.Event(), threading.Event()

    def take_all() -> None:
        started.set()
        bucket.consume(capacity)  # blocks until the clock has moved five minutes
        done.set()

    worker = threading.Thread(target=take_all, daemon=True)
    worker.start()
    assert started.wait(5)
    initial = bucket.available
    for i in range(5):
        clock.advance(MINUTE)
        if i != 4:
            # each minute adds one token; the waiter cannot take ten yet
            assert bucket.available == initial + (1 + i) * refill
            assert not done.is_set()
    assert done.wait(5), "consume() did not return after the bucket refilled"
    assert bucket.available == 0
    worker.join(5)


def test_does_not_refill_until_an_interval_has_elapsed(clock):
    bucket = LeakyBucket(10, 1, MINUTE, clock=clock)
    bucket.consume(5)
    clock.advance(MINUTE - timedelta(microseconds=1))
    assert bucket.available == 5
    clock.advance(timedelta(microseconds=1))
    assert bucket.available == 6


def test_refills_count_whole_intervals_and_carry_the_rest(clock):
    bucket = LeakyBucket(100, 1, MINUTE, clock=clock)
    bucket.consume(50)
    three_and_a_half = MINUTE * 3.5
    clock.advance(three_and_a_half)
    assert bucket.available == 50 + 3  # 3.5 intervals: three refills
    clock.advance(three_and_a_half)
    assert bucket.available == 50 + 7  # the next 3.5 give four: the half interval carried over


def test_never_holds_more_than_capacity(clock):
    bucket = LeakyBucket(10, 3, MINUTE, clock=clock)
    bucket.consume(2)
    clock.advance(MINUTE * 100)
    assert bucket.available == 10
    bucket.consume(10)
    clock.advance(MINUTE)  # refills while full were not banked
    assert bucket.available == 3
    assert bucket.next_refill == datetime(2000, 1, 1) + MINUTE * 102


# -- try_consume and consume --------------------------------------------------------------------

def test_try_consume_takes_all_or_nothing(clock):
    bucket = LeakyBucket(10, 1, MINUTE, clock=clock)
    assert bucket.try_consume(7) is True
    assert bucket.available == 3
    assert bucket.try_consume(4) is False
    assert bucket.available == 3
    assert bucket.try_consume(3) is True
    assert bucket.available == 0


def test_fractional_amounts(clock):
    bucket = LeakyBucket(2, 0.5, MINUTE, clock=clock)
    assert bucket.try_consume(1.75)
    assert bucket.available == pytest.approx(0.25)
    clock.advance(MINUTE)
    assert bucket.available == pytest.approx(0.75)


@pytest.mark.parametrize("amount", [0, -1, 11, 10.5, float("nan"), float("inf"), True, "3"])
def test_requests_that_can_never_succeed_raise(clock, amount):
    bucket = LeakyBucket(10, 1, MINUTE, clock=clock)
    with pytest.raises(ValueError):
        bucket.try_consume(amount)
    with pytest.raises(ValueError):
        bucket.consume(amount, timeout=0)
    assert bucket.available == 10


def test_consume_times_out_and_takes_nothing(clock):
    bucket = LeakyBucket(10, 1, MINUTE, clock=clock)
    bucket.consume(8)
    with pytest.raises(TimeoutError, match="2 of 10 available"):
        bucket.consume(5, timeout=0.05)
    with pytest.raises(TimeoutError):
        bucket.consume(5, timeout=timedelta(milliseconds=20))
    assert bucket.available == 2
    with pytest.raises(ValueError):
        bucket.consume(1, timeout=-1)


def test_consume_is_unblocked_by_another_thread_advancing_the_clock(clock):
    bucket = LeakyBucket(4, 2, MINUTE, clock=clock)
    bucket.consume(4)
    result: list[object] = []

    def waiter() -> None:
        try:
            bucket.consume(3, timeout=10)
            result.append("consumed")
        except (TimeoutError, ValueError) as exc:  # reported by the assert below
            result.append(exc)

    worker = threading.Thread(target=waiter, daemon=True)
    worker.start()
    clock.advance(MINUTE)  # 2 available: not enough yet
    bucket.notify()
    worker.join(0.1)
    assert worker.is_alive() and not result
    clock.advance(MINUTE)  # 4 available
    bucket.notify()
    worker.join(10)
    assert result == ["consumed"]
    assert bucket.available == 1


def test_a_bucket_that_never_refills_does_not_wait_forever(clock):
    bucket = LeakyBucket(1, 0, MINUTE, clock=clock)
    bucket.consume(1)
    clock.advance(MINUTE * 10)
    assert bucket.available == 0
    with pytest.raises(TimeoutError, match="never refills"):
        bucket.consume(1)


def test_wall_clock_bucket_refills_on_real_time():
    bucket = LeakyBucket(1, 1, timedelta(milliseconds=30))
    bucket.consume(1)
    assert not bucket.try_consume(1)
    bucket.consume(1, timeout=5)  # returns once ~30 ms of real time have passed
    assert bucket.next_refill.tzinfo is not None


def test_concurrent_consumers_never_overdraw(clock):
    bucket = LeakyBucket(500, 1, MINUTE, clock=clock)
    successes: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        won = sum(bucket.try_consume(1) for _ in range(100))
        with lock:
            successes.append(won)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(successes) == 500
    assert bucket.available == 0


# -- construction -------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error"), [
    ({"capacity": 0}, ValueError),
    ({"capacity": -5}, ValueError),
    ({"capacity": float("nan")}, ValueError),
    ({"refill_amount": -1}, ValueError),
    ({"interval": timedelta(0)}, ValueError),
    ({"interval": 60}, TypeError),
    ({"clock": "now"}, TypeError),
])
def test_bad_construction_raises(kwargs, error):
    with pytest.raises(error):
        LeakyBucket(**kwargs)


def test_a_clock_that_does_not_return_a_datetime_is_reported():
    with pytest.raises(TypeError, match="datetime"):
        LeakyBucket(clock=lambda: 12.0)


# -- LEAN configuration -------------------------------------------------------------------------

LEAN_STYLE_CONFIG = """\
{
  // this configuration file drives the engine
  "environment": "backtesting", // the active environment
  "data-folder": "../../../Data/",
  "api-url": "https://www.example.com/api/v2/",
  /* training quota of scheduled events:
     capacity in minutes, refilled every interval */
  "scheduled-event-leaky-bucket-capacity": 60,
  "scheduled-event-leaky-bucket-time-interval-minutes": "720",
  "scheduled-event-leaky-bucket-refill-amount": 5,
  "escaped": "a \\"quoted // not a comment\\" value",
  "environments": {
    "backtesting": { "live-mode": false, },
  },
}
"""


def test_from_config_reads_leans_json_with_comments(tmp_path, clock):
    path = tmp_path / "config.json"
    path.write_text(LEAN_STYLE_CONFIG, encoding="utf-8")
    bucket = LeakyBucket.from_config(path, clock=clock)
    assert (bucket.capacity, bucket.interval, bucket.refill_amount) == (
        60, timedelta(minutes=720), 5)
    assert bucket.available == 60
    bucket.consume(10)
    clock.advance(timedelta(minutes=720))
    assert bucket.available == 55  # refilled on the configured interval and amount
    assert LeakyBucket.from_config(str(path)).capacity == 60


def test_from_config_mapping_defaults_follow_lean():
    bucket = LeakyBucket.from_config({"scheduled-event-leaky-bucket-capacity": "10"})
    assert (bucket.capacity, bucket.interval, bucket.refill_amount) == (
        10, timedelta(minutes=1440), 2)
    empty = LeakyBucket.from_config({})
    assert (empty.capacity, empty.refill_amount) == (120, 18)
    zero_refill = LeakyBucket.from_config({"scheduled-event-leaky-bucket-capacity": 1,
                                           "scheduled-event-leaky-bucket-refill-amount": 0})
    assert zero_refill.refill_amount == 0  # LEAN's own training regression tests use this


@pytest.mark.parametrize("config", [
    {"scheduled-event-leaky-bucket-capacity": "lots"},
    {"scheduled-event-leaky-bucket-capacity": 0},
    {"scheduled-event-leaky-bucket-time-interval-minutes": 0},
    {"scheduled-event-leaky-bucket-refill-amount": -2},
])
def test_from_config_rejects_bad_values(config):
    with pytest.raises(ValueError):
        LeakyBucket.from_config(config)


def test_from_config_rejects_bad_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"scheduled-event-leaky-bucket-capacity": 10', encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        LeakyBucket.from_config(broken)
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([1, 2]), encoding="utf-8")
    with pytest.raises(ValueError, match="JSON object"):
        LeakyBucket.from_config(listing)
    with pytest.raises(FileNotFoundError):
        LeakyBucket.from_config(tmp_path / "missing.json")
    with pytest.raises(TypeError):
        LeakyBucket.from_config(42)


# -- LEAN's presets ------------------------------------------------------------------------------

@pytest.mark.parametrize("ram, capacity, refill", [
    ("512MB", 30, 5), ("1024MB", 60, 10), ("2048MB", 90, 15),
    ("1GB", 60, 10), ("2 gb", 90, 15), (512, 30, 5),
])
def test_live_server_presets_follow_lean_s_table(clock: ManualClock, ram, capacity, refill) -> None:
    bucket = LeakyBucket.for_live_server(ram, clock=clock)
    assert (bucket.capacity, bucket.refill_amount) == (capacity, refill)
    assert bucket.interval == timedelta(hours=24)
    # Drained, it gains `refill` minutes per whole day, never past capacity.
    assert bucket.try_consume(capacity) and not bucket.try_consume(1)
    clock.advance(timedelta(hours=23, minutes=59))
    assert bucket.available == 0
    clock.advance(timedelta(minutes=1))
    assert bucket.available == refill
    clock.advance(timedelta(days=30))
    assert bucket.available == capacity


def test_local_default_is_lean_s_local_quota() -> None:
    from alphazoo.training.bucket import LOCAL_LIMITS

    bucket = LeakyBucket()
    assert LOCAL_LIMITS == (120, math.ceil(120 / 7), 1440) == (120, 18, 1440)
    assert (bucket.capacity, bucket.refill_amount, bucket.interval) == (
        120, 18, timedelta(minutes=1440))


@pytest.mark.parametrize("ram", ["4096MB", "fast", "", 0])
def test_unknown_live_server_is_refused_with_the_choices(ram) -> None:
    with pytest.raises(ValueError, match="512MB, 1024MB, 2048MB"):
        LeakyBucket.for_live_server(ram)


def test_live_server_ram_must_be_a_size() -> None:
    with pytest.raises(TypeError, match="1024MB"):
        LeakyBucket.for_live_server(True)  # type: ignore[arg-type]
