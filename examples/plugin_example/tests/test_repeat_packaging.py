"""Packaging conformance: the entry point exists, loads cheaply and declares a well-formed backend."""

from tritium.testing import PluginPackagingConformance


class TestRepeatPackaging(PluginPackagingConformance):
    distribution = "tritium-backend-repeat"
    entry_point = "backend_repeat"
