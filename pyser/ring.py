"""``FrameRing``: the last rows of a stream of fixed-width frames, with absolute indices.

The stream engine keeps two of them per stream: the feature frames (width ``n_bins``) that
the CNN still needs, and the cached CNN output steps (width ``rnn_input_size``) that the
BiGRU reads each hop.

Every row is stored twice, at ``i % capacity`` and ``i % capacity + capacity``, so the last
``k <= capacity`` rows always lie contiguous in memory: reading a window is one slice and
one copy, whatever the wrap-around, and appending a block costs one copy per row written.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FrameRing"]


class FrameRing:
    """A ring buffer of the last ``capacity`` rows of width ``width`` (float32).

    Rows carry absolute indices: the first row appended after construction is row 0, after
    ``reset(start)`` row ``start``. Rows older than ``end - capacity`` are forgotten.

    Args:
        capacity: rows held, >= 1.
        width: values per row, >= 1.
    """

    def __init__(self, capacity: int, width: int) -> None:
        for name, value in (("capacity", capacity), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"FrameRing: {name} must be a positive int, got {value!r}")
        self.capacity = int(capacity)
        self.width = int(width)
        self._buf = np.zeros((2 * self.capacity, self.width), dtype=np.float32)
        self._end = 0
        self._first = 0  # index of the first row appended since the last reset

    @property
    def end(self) -> int:
        """Absolute index one past the newest row (= rows appended since the last reset)."""
        return self._end

    @property
    def start(self) -> int:
        """Absolute index of the oldest row still held."""
        return max(self._first, self._end - self.capacity)

    def __len__(self) -> int:
        return self._end - self.start

    def reset(self, start: int = 0) -> None:
        """Forget every row; the next row appended gets absolute index ``start``."""
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"FrameRing.reset: start must be an int >= 0, got {start!r}")
        self._end = int(start)
        self._first = self._end

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` (n, width), oldest first; n may be 0.

        Raises:
            ValueError: wrong shape. The ring is unchanged.
        """
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(
                f"FrameRing.append: rows must have shape (n, {self.width}), got {rows.shape}"
            )
        n = rows.shape[0]
        if n > self.capacity:  # only the newest `capacity` rows can be kept
            self._end += n - self.capacity
            rows = rows[n - self.capacity :]
            n = self.capacity
        pos = self._end % self.capacity
        first = min(n, self.capacity - pos)  # rows before the physical wrap
        for offset in (0, self.capacity):
            self._buf[offset + pos : offset + pos + first] = rows[:first]
            self._buf[offset : offset + n - first] = rows[first:]
        self._end += n

    def window(self, start: int, end: int | None = None) -> np.ndarray:
        """Rows ``[start, end)`` by absolute index (``end`` None: the newest), as a new array.

        Raises:
            ValueError: the range is not within ``[self.start, self.end]``.
        """
        end = self._end if end is None else end
        if not self.start <= start <= end <= self._end:
            raise ValueError(
                f"FrameRing.window: rows [{start}, {end}) are not held; the ring holds "
                f"[{self.start}, {self._end})"
            )
        pos = start % self.capacity
        return self._buf[pos : pos + (end - start)].copy()
