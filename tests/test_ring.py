"""FrameRing: absolute indices, contiguous windows across the wrap, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyser.ring import FrameRing


def rows(start: int, n: int, width: int = 3) -> np.ndarray:
    """Rows whose every value is their absolute index (plus the column / 10)."""
    return (np.arange(start, start + n)[:, None] + np.arange(width)[None] / 10).astype(np.float32)


def test_append_and_window_by_absolute_index():
    ring = FrameRing(capacity=5, width=3)
    assert (ring.start, ring.end, len(ring)) == (0, 0, 0)
    ring.append(rows(0, 3))
    np.testing.assert_array_equal(ring.window(0), rows(0, 3))
    ring.append(rows(3, 4))  # wraps: holds rows 2..6
    assert (ring.start, ring.end, len(ring)) == (2, 7, 5)
    np.testing.assert_array_equal(ring.window(2), rows(2, 5))
    np.testing.assert_array_equal(ring.window(4, 6), rows(4, 2))


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 9), blocks=st.lists(st.integers(0, 25), max_size=12))
def test_any_blocks_give_the_newest_rows_contiguously(capacity, blocks):
    ring, end = FrameRing(capacity, 3), 0
    for n in blocks:
        ring.append(rows(end, n))
        end += n
        assert ring.end == end and ring.start == max(0, end - capacity)
        for a in range(ring.start, end + 1):
            got = ring.window(a)
            assert got.flags.c_contiguous
            np.testing.assert_array_equal(got, rows(a, end - a))


def test_window_is_a_copy_that_later_appends_do_not_change():
    ring = FrameRing(4, 3)
    ring.append(rows(0, 4))
    window = ring.window(0)
    ring.append(rows(4, 4))
    np.testing.assert_array_equal(window, rows(0, 4))


def test_reset_with_a_start_index():
    ring = FrameRing(4, 3)
    ring.append(rows(0, 6))
    ring.reset(100)
    assert (ring.start, ring.end, len(ring)) == (100, 100, 0)
    ring.append(rows(100, 2))
    np.testing.assert_array_equal(ring.window(100), rows(100, 2))
    with pytest.raises(ValueError, match="not held"):
        ring.window(99)


@pytest.mark.parametrize("bad", [np.zeros((2, 4)), np.zeros(3), np.zeros((1, 2, 3))])
def test_bad_rows_raise_and_leave_the_ring_unchanged(bad):
    ring = FrameRing(4, 3)
    ring.append(rows(0, 2))
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        ring.append(bad)
    assert ring.end == 2
    np.testing.assert_array_equal(ring.window(0), rows(0, 2))


def test_out_of_range_windows_and_bad_sizes_raise():
    ring = FrameRing(4, 3)
    ring.append(rows(0, 6))
    for a, b in [(1, 6), (3, 7), (5, 4)]:
        with pytest.raises(ValueError, match="not held"):
            ring.window(a, b)
    for capacity, width in [(0, 3), (3, 0), (2.5, 3), (True, 3)]:
        with pytest.raises(ValueError, match="positive int"):
            FrameRing(capacity, width)
