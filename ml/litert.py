"""Running a ``.tflite`` model with LiteRT: NumPy in, logits out, no TensorFlow.

Used by the web's inference (``predictions.inference``) and by the export's parity check, so
the check exercises the very code that serves predictions.
"""

from __future__ import annotations

import threading

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class LiteRTModel:
    """A loaded interpreter behind a lock (an interpreter is not thread-safe).

    The batch dimension is resized when a call brings a batch of a new size; tensors are
    re-allocated only then.
    """

    def __init__(self, model_content: bytes, *, num_threads: int = 1):
        self._interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output_index = self._interpreter.get_output_details()[0]["index"]
        self._batch_size = int(self._input["shape"][0])
        self._lock = threading.Lock()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"][1:])

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """One logit per image (probability of male before the sigmoid)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ValueError(f"Expected a batch of shape (n, {self.input_shape}), got {batch.shape}.")
        if len(batch) == 0:
            return np.zeros((0,), dtype=np.float32)
        with self._lock:
            if len(batch) != self._batch_size:
                self._interpreter.resize_tensor_input(self._input["index"], [len(batch), *self.input_shape])
                self._interpreter.allocate_tensors()
                self._batch_size = len(batch)
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output_index)
        return np.array(output, dtype=np.float32).reshape(len(batch))
