"""Triton's classification extension: an output replaced by its top-k ``"value:index[:label]"`` strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _format_value(value: Any, floating: bool) -> str:
    # Triton formats with std::to_string: six decimals for floating types, plain integers otherwise.
    return f"{float(value):f}" if floating else str(int(value))


def classify_row(row: np.ndarray[Any, Any], k: int, labels: Sequence[str] | None) -> list[bytes]:
    """Top-``k`` entries of one flattened row, highest value first (ties by lower index)."""
    flat = row.reshape(-1)
    k = min(k, flat.size)
    order = np.argsort(-flat.astype(np.float64), kind="stable")[:k]
    floating = flat.dtype.kind == "f" or flat.dtype.name == "bfloat16"
    out: list[bytes] = []
    for index in order:
        text = f"{_format_value(flat[index], floating)}:{int(index)}"
        if labels is not None and int(index) < len(labels):
            text += f":{labels[int(index)]}"
        out.append(text.encode("utf-8"))
    return out


def classify(
    array: np.ndarray[Any, Any], k: int, labels: Sequence[str] | None, batched: bool
) -> np.ndarray[Any, Any]:
    """The classification tensor of ``array``: BYTES ``[batch, k]`` when batched, else ``[k]``."""
    if batched:
        rows = [classify_row(array[i], k, labels) for i in range(array.shape[0])]
        width = min(k, int(np.prod(array.shape[1:], dtype=np.int64))) if array.shape[0] else k
        table: np.ndarray[Any, Any] = np.empty((len(rows), width), dtype=object)
        for i, row in enumerate(rows):
            table[i, :] = row
        return table
    row = classify_row(array, k, labels)
    flat: np.ndarray[Any, Any] = np.empty(len(row), dtype=object)
    flat[:] = row
    return flat
