"""Tritium's conformance kit: the tests every plugin, in this repository or outside it, runs against itself.

Install it with the kernel's ``testing`` extra (``pip install "tritium[testing]"``: hypothesis, pytest,
pytest-asyncio). It has four parts:

* test mixins (pytest classes with abstract fixtures, in the style of fsspec's ``fsspec/tests/abstract``):
  subclass one in your plugin's tests, provide the fixtures it names, and inherit its ``test_*`` methods:

  - :class:`BackendConformance` (module :mod:`tritium.testing.backend`),
  - :class:`SchedulerConformance` (:mod:`tritium.testing.scheduler`),
  - :class:`FrontendConformance` and the :class:`FrontendClient` protocol (:mod:`tritium.testing.frontend`),
  - :class:`MetricsSinkConformance` (:mod:`tritium.testing.metrics`),
  - :class:`PluginPackagingConformance` (:mod:`tritium.testing.packaging`);

* :mod:`tritium.testing.strategies`: hypothesis strategies for datatypes, shapes, arrays, tensors, model
  configs, requests valid for a config, and metrics events;
* :mod:`tritium.testing.builders`: the same objects built deterministically, and output checks;
* :mod:`tritium.testing.fakes`: an identity backend, recorders, a loopback frontend, repository writers; the
  module is also a plugin (``tritium.Server(options, plugins=[("fakes", tritium.testing.fakes)])``);
* :mod:`tritium.testing.service`: :class:`ReferenceService`, the reference fake :class:`tritium.InferenceService`
  a frontend's own tests run against (every capability, deterministic models).

A pytest plugin registered by the kernel (entry point ``pytest11``) rewrites the kit's assertions, so a failing
inherited test shows the values it compared.

The mixins are imported lazily (``from tritium.testing import BackendConformance`` imports pytest then), so
``tritium.testing.fakes`` and ``tritium.testing.builders`` work without the test dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BackendConformance": "tritium.testing.backend",
    "SchedulerConformance": "tritium.testing.scheduler",
    "FrontendConformance": "tritium.testing.frontend",
    "FrontendClient": "tritium.testing.frontend",
    "MetricsSinkConformance": "tritium.testing.metrics",
    "PluginPackagingConformance": "tritium.testing.packaging",
    "ReferenceService": "tritium.testing.service",
}

__all__ = [
    "BackendConformance",
    "FrontendClient",
    "FrontendConformance",
    "MetricsSinkConformance",
    "PluginPackagingConformance",
    "ReferenceService",
    "SchedulerConformance",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tritium.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
