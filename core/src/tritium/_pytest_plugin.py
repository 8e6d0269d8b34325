"""A pytest plugin (entry point ``pytest11``) that makes the conformance kit pleasant to run anywhere.

pytest loads it before any test module, so it can register :mod:`tritium.testing` for assertion rewriting:
a failing check inside an inherited conformance test shows the compared values, as in the plugin's own tests.
It also keeps the kit from printing pytest-asyncio's notice about an unset
``asyncio_default_fixture_loop_scope`` in projects that never configured pytest-asyncio: the kit's async tests
and fixtures are function-scoped, which is what that notice asks a project to decide.

Importing this module costs nothing when pytest is not running (nothing imports it but pytest).
"""

from __future__ import annotations

import warnings

import pytest

pytest.register_assert_rewrite("tritium.testing")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before pytest-asyncio reads its settings: silence its notice when the project left the scope unset."""
    warnings.filterwarnings(
        "ignore",
        message='The configuration option "asyncio_default_fixture_loop_scope" is unset',
        category=pytest.PytestDeprecationWarning,
    )
