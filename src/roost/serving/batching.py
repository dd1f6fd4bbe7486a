"""Dynamic batching: requests that arrive while the model is busy share its next forward pass.

A single worker thread takes the first waiting request and, without waiting any
longer, everything else already queued (up to ``max_batch`` images), and runs
one forward pass for all of them. A lone client therefore pays no extra
latency, while concurrent clients get the throughput of batched inference.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np

from roost.serving.predictor import Prediction, Predictor


class DynamicBatcher:
    def __init__(self, predictor: Predictor, max_batch: int = 8) -> None:
        self.predictor = predictor
        self.max_batch = max(1, max_batch)
        self._queue: queue.Queue[tuple[list[np.ndarray], Future]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="roost-batcher", daemon=True)
        self._thread.start()

    @property
    def class_names(self):
        return self.predictor.class_names

    def predict(self, images: list[bytes]) -> list[Prediction]:
        """Same contract as :meth:`Predictor.predict`; decoding happens in the caller's thread."""
        arrays = [self.predictor.preprocess(b) for b in images]
        future: Future = Future()
        self._queue.put((arrays, future))
        return [Prediction(p.tolist()) for p in future.result()]

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            size = len(batch[0][0])
            while size < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
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
