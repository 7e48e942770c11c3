"""Combining frames into masters (pure functions over stacks)."""

from __future__ import annotations

import numpy as np


def mean_minmax_reject(stack: np.ndarray) -> np.ndarray:
    """Per-pixel mean after dropping the lowest and highest value (fewer than 3 frames: plain mean).

    Parameters
    ----------
    stack : numpy.ndarray
        Shape ``(n, ny, nx)``.
    """
    n = stack.shape[0]
    if n < 3:
        return stack.mean(axis=0, dtype=np.float64).astype(np.float32)
    total = stack.sum(axis=0, dtype=np.float64)
    total -= stack.min(axis=0)
    total -= stack.max(axis=0)
    return (total / (n - 2)).astype(np.float32)


def median_combine(stack: np.ndarray) -> np.ndarray:
    """Per-pixel median; with more than 7 frames the min and max are dropped first (SEDM).

    Parameters
    ----------
    stack : numpy.ndarray
        Shape ``(n, ny, nx)``.
    """
    if stack.shape[0] == 1:
        return stack[0].astype(np.float32)
    if stack.shape[0] > 7:
        s = np.sort(stack, axis=0)[1:-1]
        return np.median(s, axis=0).astype(np.float32)
    return np.median(stack, axis=0).astype(np.float32)
