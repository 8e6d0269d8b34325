"""Which requests may share a batch: Triton's ``RequiredEqualInputs``, reduced to one hashable key.

Two requests may be batched together exactly when their keys are equal. The key holds, for every input
whose shape must match (variable dims without ``allow_ragged_batch``), its shape without the batch
dimension; for shape tensors also their contents; and, when the model has optional inputs, which inputs
are present. A model with fixed-shape inputs and no optional inputs needs no key at all (None): the
kernel's validation already made every request's shapes equal.
"""

from __future__ import annotations

from collections.abc import Hashable

from tritium import InferenceRequest
from tritium_scheduler_dynamic._settings import BatcherSettings


def batch_key(request: InferenceRequest, settings: BatcherSettings) -> Hashable | None:
    """The batching-compatibility key of a validated request (computed once, at enqueue)."""
    if not settings.checks_inputs:
        return None
    enforced = settings.enforced_inputs
    parts: list[tuple[object, ...]] = []
    for name, tensor in request.inputs.items():
        compare_contents = enforced.get(name)
        if compare_contents is None:
            if settings.has_optional_input:
                parts.append((name,))
            continue
        data = tensor.data
        if compare_contents:
            parts.append((name, tuple(data.shape), data.tobytes()))
        else:
            parts.append((name, tuple(data.shape[1:])))
    return frozenset(parts)
