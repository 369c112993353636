"""Micro-batching and metric bookkeeping, in-process (no server)."""

import asyncio
import threading

import numpy as np
import pytest
from credit_risk.serving import metrics
from credit_risk.serving.batcher import MicroBatcher
from prometheus_client import Histogram


class SlowModel:
    """PD = x / 100, taking ``seconds`` per call; records each call's row count."""

    def __init__(self, seconds=0.02):
        self.seconds = seconds
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, arrays):
        import time

        time.sleep(self.seconds)
        with self.lock:
            self.calls.append(len(arrays["x"]))
        return arrays["x"].reshape(-1) / 100.0


def _rows(*values):
    return {"x": np.asarray(values, dtype=np.float32).reshape(-1, 1)}


def test_concurrent_requests_share_model_calls_and_get_their_own_rows():
    model = SlowModel()
    batcher = MicroBatcher(model, max_rows=64)

    async def run():
        return await asyncio.gather(*[batcher.predict(_rows(i, i + 0.5)) for i in range(20)])

    results = asyncio.run(run())
    for i, pd in enumerate(results):
        np.testing.assert_allclose(pd, [i / 100, (i + 0.5) / 100], rtol=1e-6)
    assert sum(model.calls) == 40 and len(model.calls) < 20  # coalesced, every row scored once
    batcher.close()


def test_a_batch_never_exceeds_max_rows_but_a_big_request_goes_alone():
    model = SlowModel()
    batcher = MicroBatcher(model, max_rows=10)

    async def run():
        jobs = [batcher.predict(_rows(*range(4))) for _ in range(6)]
        jobs.append(batcher.predict(_rows(*range(25))))  # larger than max_rows: its own call
        return await asyncio.gather(*jobs)

    results = asyncio.run(run())
    assert len(results[-1]) == 25
    assert all(c <= 10 for c in model.calls if c != 25) and 25 in model.calls
    assert sum(model.calls) == 6 * 4 + 25
    batcher.close()


def test_a_lone_request_is_not_held_back_even_with_a_long_window():
    model = SlowModel(seconds=0.0)
    batcher = MicroBatcher(model, max_wait_s=0.5)  # only used after a call that had company

    async def run():
        loop = asyncio.get_running_loop()
        start = loop.time()
        await batcher.predict(_rows(1.0))
        return loop.time() - start

    assert asyncio.run(run()) < 0.05 and model.calls == [1]
    batcher.close()


def test_after_a_shared_call_the_window_gathers_the_stragglers():
    model = SlowModel(seconds=0.01)
    batcher = MicroBatcher(model, max_wait_s=0.05)

    async def run():
        await asyncio.gather(*[batcher.predict(_rows(1.0)) for _ in range(3)])  # a call with company
        first = asyncio.ensure_future(batcher.predict(_rows(2.0)))
        await asyncio.sleep(0.02)  # arrives inside the 50 ms window
        second = asyncio.ensure_future(batcher.predict(_rows(3.0)))
        return await asyncio.gather(first, second)

    results = asyncio.run(run())
    assert [r.item() for r in results] == pytest.approx([0.02, 0.03])
    assert model.calls[-1] == 2  # both joined one call
    batcher.close()


def test_a_model_error_reaches_every_waiter_and_the_batcher_keeps_working():
    calls = []

    def flaky(arrays):
        calls.append(len(arrays["x"]))
        if len(calls) == 1:
            raise RuntimeError("model exploded")
        return arrays["x"].reshape(-1)

    batcher = MicroBatcher(flaky)

    async def run():
        first = await asyncio.gather(*[batcher.predict(_rows(1.0)) for _ in range(3)], return_exceptions=True)
        second = await batcher.predict(_rows(7.0))
        return first, second

    first, second = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) for r in first) and second.tolist() == [7.0]
    batcher.close()


def test_bad_batcher_settings():
    with pytest.raises(ValueError, match="max_rows"):
        MicroBatcher(lambda a: a, max_rows=0)


@pytest.mark.parametrize("n", [3, 500])
def test_observe_many_equals_observing_one_by_one(n):
    values = np.random.default_rng(n).random(n)
    one, many = (Histogram(f"t_{n}_{k}", "test", buckets=(0.1, 0.5, 0.9)) for k in ("one", "many"))
    for v in values:
        one.observe(v)
    metrics.observe_many(many, values)

    def samples(h, name):
        return {
            s.name.replace(name, "h") + str(sorted(s.labels.items())): s.value
            for s in h.collect()[0].samples
            if not s.name.endswith("_created")
        }

    expected, got = samples(one, f"t_{n}_one"), samples(many, f"t_{n}_many")
    assert expected.keys() == got.keys() and len(expected) == 6  # 4 buckets, count, sum
    for key, value in expected.items():
        assert got[key] == pytest.approx(value)
