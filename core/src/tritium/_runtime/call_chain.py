"""Which models a nested request passed through: the guard against models waiting on themselves.

A request submitted through a :class:`tritium.abc.ModelClient` carries ``call_chain``, the models whose
executions submitted it. While the kernel schedules or executes such a request it publishes the chain, plus the
model at work, in :data:`CALL_CHAIN` (a context variable: per asyncio task and per thread, so concurrent
executions never see each other's chain). A client reads it to tell which request it is nested in, since a
backend calling ``infer_blocking`` inside ``execute`` does not name the request it serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar

from tritium._base.tensors import InferenceRequest

DEFAULT_MAX_CALL_DEPTH = 16
"""How many models deep requests may nest (a client's request to a model is depth 1)."""

CALL_CHAIN: ContextVar[tuple[str, ...]] = ContextVar("tritium_call_chain", default=())
"""The models the current execution is nested in, outermost first, ending with the model at work; empty
outside nested requests."""


def execution_chain(requests: Sequence[InferenceRequest], model_name: str) -> tuple[str, ...]:
    """The chain to publish while ``model_name`` executes ``requests``: the longest chain among them plus the
    model; empty when none of them is nested (then a client falls back to its own model)."""
    longest: tuple[str, ...] = ()
    for request in requests:
        chain = request.call_chain
        if len(chain) > len(longest):
            longest = chain
    return (*longest, model_name) if longest else ()
