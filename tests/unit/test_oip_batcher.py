"""The server's dynamic batcher with a numpy predictor: requests combined and split,
each answered with its own rows, failures confined to their batch, calls into a backend
that is not thread-safe serialised."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from mlperf_pilot.oip.batcher import Batcher, InferenceFailed


class Recorder:
    """Doubles its input; a row holding 99 makes the batch raise."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[np.ndarray] = []
        self.delay_s = delay_s
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            self.calls.append(batch)
            if self.delay_s:
                time.sleep(self.delay_s)
            if (batch == 99).any():
                raise ValueError("row out of range\nsecond line")
            return [batch * 2, batch.sum(axis=1)]
        finally:
            with self.lock:
                self.active -= 1


def _rows(*values: float) -> np.ndarray:
    return np.array([[v, v] for v in values], dtype=np.float32)


def _copy(outputs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.array(o) for o in outputs]


def _run(batcher: Batcher, coroutine) -> object:
    batcher.start()
    try:
        return asyncio.run(coroutine)
    finally:
        batcher.close()


def test_concurrent_requests_share_a_call_and_get_their_own_rows() -> None:
    model = Recorder()
    batcher = Batcher(model.predict, max_batch_size=8, batch_timeout_us=200_000)

    async def go():
        futures = [batcher.submit(_rows(n), _copy) for n in range(4)]
        return await asyncio.gather(*futures)

    answers = _run(batcher, go())
    assert len(model.calls) == 1 and model.calls[0].shape == (4, 2)
    for n, (doubled, summed) in enumerate(answers):
        np.testing.assert_array_equal(doubled, _rows(2 * n))
        np.testing.assert_array_equal(summed, [2.0 * n])


def test_a_request_alone_reaches_the_backend_as_it_came() -> None:
    model = Recorder()
    batcher = Batcher(model.predict, max_batch_size=8)
    request = _rows(1, 2, 3)
    request.flags.writeable = False  # as a binary tensor decoded from the body is

    async def go():
        return await batcher.submit(request, _copy)

    _run(batcher, go())
    assert model.calls[0] is request


def test_a_request_larger_than_the_batch_is_split_and_joined_in_order() -> None:
    model = Recorder()
    batcher = Batcher(model.predict, max_batch_size=4, workers=2)
    request = _rows(*range(10))

    async def go():
        return await batcher.submit(request, _copy)

    doubled, summed = _run(batcher, go())
    assert sorted(len(call) for call in model.calls) == [2, 4, 4]
    np.testing.assert_array_equal(doubled, request * 2)
    np.testing.assert_array_equal(summed, request.sum(axis=1))


def test_a_failure_fails_exactly_the_requests_of_its_batch() -> None:
    model = Recorder()
    batcher = Batcher(model.predict, max_batch_size=2, batch_timeout_us=200_000)

    async def go():
        bad_batch = [batcher.submit(_rows(1), _copy), batcher.submit(_rows(99), _copy)]
        later = batcher.submit(_rows(3), _copy)
        return (await asyncio.gather(*bad_batch, return_exceptions=True), await later)

    (first, second), later = _run(batcher, go())
    for failed in (first, second):
        assert isinstance(failed, InferenceFailed)
        assert str(failed) == "inference failed: row out of range"
    np.testing.assert_array_equal(later[0], _rows(6))


def test_a_split_request_fails_once_when_one_chunk_fails() -> None:
    model = Recorder()
    batcher = Batcher(model.predict, max_batch_size=2)

    async def go():
        return await batcher.submit(_rows(1, 2, 99, 4, 5), _copy)

    with pytest.raises(InferenceFailed, match="row out of range"):
        _run(batcher, go())


def test_outputs_without_a_row_per_sample_are_a_failure() -> None:
    batcher = Batcher(lambda batch: [batch[:1]], max_batch_size=4, batch_timeout_us=100_000)

    async def go():
        return await asyncio.gather(batcher.submit(_rows(1), _copy),
                                    batcher.submit(_rows(2), _copy), return_exceptions=True)

    answers = _run(batcher, go())
    assert all(isinstance(a, InferenceFailed) and "1 rows for a batch of 2" in str(a)
               for a in answers)


@pytest.mark.parametrize("thread_safe", [True, False])
def test_calls_into_a_backend_that_is_not_thread_safe_are_serialised(thread_safe: bool
                                                                     ) -> None:
    model = Recorder(delay_s=0.05)
    batcher = Batcher(model.predict, max_batch_size=1, workers=3, thread_safe=thread_safe)

    async def go():
        return await asyncio.gather(*[batcher.submit(_rows(n), _copy) for n in range(6)])

    answers = _run(batcher, go())
    assert [float(a[1][0]) for a in answers] == [2.0 * n for n in range(6)]
    assert (model.most_active == 1) is (not thread_safe)


def test_close_runs_what_is_queued_first() -> None:
    model = Recorder(delay_s=0.02)
    batcher = Batcher(model.predict, max_batch_size=1)
    batcher.start()

    async def go():
        futures = [batcher.submit(_rows(n), _copy) for n in range(5)]
        await asyncio.sleep(0)
        closing = asyncio.get_running_loop().run_in_executor(None, batcher.close)
        answers = await asyncio.gather(*futures)
        await closing
        return answers

    answers = asyncio.run(go())
    assert len(answers) == 5 and not batcher.running
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(_submit_after_close(batcher))


async def _submit_after_close(batcher: Batcher) -> None:
    batcher.submit(_rows(1), _copy)
