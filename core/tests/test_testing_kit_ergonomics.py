"""The conformance kit run the way a third party runs it: a project of its own, no pytest configuration."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

THIRD_PARTY_TEST = textwrap.dedent(
    '''
    import numpy as np
    import pytest

    from tritium import DataType, InferenceRequest, InferenceResponse, Tensor
    from tritium._runtime.default_scheduler import DefaultScheduler
    from tritium.testing import SchedulerConformance
    from tritium.testing.fakes import identity_config


    class TestDefaultScheduler(SchedulerConformance):
        @pytest.fixture
        def scheduler_factory(self):
            return DefaultScheduler


    def test_a_failing_kit_check_shows_its_values():
        config = identity_config("m", max_batch_size=0, dims=(2,))
        data = np.array([1, 2], np.float32)
        request = InferenceRequest(model_name="m", inputs={"INPUT0": Tensor("INPUT0", DataType.FP32, data)}, id="sent")
        response = InferenceResponse(model_name="m", model_version="1", id="other")
        SchedulerConformance.assert_identity(config, request, response)
    '''
)


def test_kit_failures_show_details_and_no_deprecation_notice(tmp_path: Path) -> None:
    (tmp_path / "test_third_party.py").write_text(THIRD_PARTY_TEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-W", "default",
         "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path, check=False,
    )
    output = result.stdout + result.stderr
    assert "1 failed, 7 passed" in output, output
    # Assertion rewriting inside tritium.testing: the compared values, not just the message.
    assert "assert 'other' == 'sent'" in output, output
    assert "DeprecationWarning" not in output, output
