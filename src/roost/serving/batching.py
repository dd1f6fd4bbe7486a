"""Dynamic batching: requests that arrive while the model is busy share its next forward pass.

A worker thread takes the first waiting request and, without waiting any
longer, everything else already queued (up to ``max_batch`` images), and runs
one forward pass for all of them. A lone client therefore pays no extra
latency, while concurrent clients get the throughput of batched inference.
Several workers (an endpoint's ``InitialInstanceCount``) run forward passes
side by side.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from roost.serving.invocations import Prediction

if TYPE_CHECKING:  # the server imports this before any model is loaded, so without PyTorch
    from roost.serving.predictor import Predictor

_Request = tuple[list[np.ndarray], Future]


class DynamicBatcher:
    def __init__(self, predictor: Predictor, max_batch: int = 8, workers: int = 1, name: str = "roost-batcher") -> None:
        self.predictor = predictor
        self.max_batch = max(1, max_batch)
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(max(1, workers))
        ]
        for t in self._threads:
            t.start()

    @property
    def class_names(self) -> list[str] | None:
        return self.predictor.class_names

    def predict(self, images: list[bytes]) -> list[Prediction]:
        """Same contract as :meth:`Predictor.predict`; decoding happens in the caller's thread, ``max_batch``
        images at a time, so a request of many images never holds more than that many decoded."""
        out = []
        for start in range(0, len(images), self.max_batch):
            arrays = [self.predictor.preprocess(b) for b in images[start : start + self.max_batch]]
            future: Future = Future()
            self._queue.put((arrays, future))
            out += [Prediction(p.tolist()) for p in future.result()]
        return out

    def close(self) -> None:
        """Let the workers finish what is queued, then end."""
        for _ in self._threads:
            self._queue.put(None)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, size = [first], len(first[0])
            while size < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # closing: serve this batch, then stop
                    self._queue.put(None)
                    break
                batch.append(item)
                size += len(item[0])
            try:
                probs = self.predictor.predict_arrays([a for arrays, _ in batch for a in arrays])
            except Exception as err:  # noqa: BLE001 - hand the error to every waiting request
                for _, fut in batch:
                    fut.set_exception(err)
                continue
            start = 0
            for arrays, fut in batch:
                fut.set_result(probs[start : start + len(arrays)])
                start += len(arrays)
