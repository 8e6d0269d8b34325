"""``BackendConformance``: the tests every backend inherits.

Subclass it in your plugin's tests and provide two fixtures (as methods of the subclass)::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend(self):
            return MyBackend({})

        @pytest.fixture(params=["batching", "nobatch"])
        def model_source_and_config(self, request, tmp_path):
            ...  # write a model into tmp_path
            return source, config

Optionally override ``sample_requests`` (a list of requests valid for the model, built with
:func:`tritium.testing.builders.build_request`) when random small values do not suit the model, and
``request_strategy`` (a hypothesis strategy of requests, default
:func:`tritium.testing.strategies.requests_for` of the config). Class attributes tune what is checked.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritium._base.errors import ConfigError, TritiumError
from tritium._base.tensors import InferenceRequest, RequestedOutput
from tritium.abc import Backend, ModelInstance, ModelSource
from tritium.config import normalize_model_config
from tritium.testing._modelconfig import ModelConfig, is_decoupled, is_refinement
from tritium.testing.builders import batch_of, build_request, check_outputs
from tritium.testing.fakes import placement
from tritium.testing.strategies import requests_for

__all__ = ["BackendConformance", "run_decoupled"]

_TIMEOUT_S = 60.0


def _copy(config: ModelConfig) -> ModelConfig:
    out = type(config)()
    out.CopyFrom(config)
    return out


def run_decoupled(
    instance: ModelInstance, request: InferenceRequest, timeout: float = _TIMEOUT_S
) -> list[tuple[Mapping[str, Any] | None, bool]]:
    """Call ``execute_decoupled`` on a worker thread (as the kernel does) and collect every ``send``.

    Raises what the model raised; fails if it neither returns nor sends a final flag within ``timeout``.
    """
    sent: list[tuple[Mapping[str, Any] | None, bool]] = []
    lock = threading.Lock()

    def send(outputs: Mapping[str, Any] | None, final: bool) -> None:
        with lock:
            sent.append((outputs, final))

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(instance.execute_decoupled, request, send).result(timeout=timeout)
    with lock:
        return list(sent)


def _equal(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True))
    return bool(np.array_equal(a, b))


class BackendConformance:
    """Inherited tests of a :class:`tritium.Backend` and its :class:`tritium.ModelInstance`.

    Fixtures to provide: ``backend`` and ``model_source_and_config``. Class attributes:

    * ``deterministic``: the model gives equal outputs for equal inputs (then batched, concurrent and
      single executions are compared value by value);
    * ``validates_model_file``: loading a version whose model file holds garbage must raise
      :class:`tritium.TritiumError` or :class:`tritium.ConfigError` (set False for backends that ignore
      the file's content);
    * ``concurrent_rounds``: executions per thread in the concurrency test;
    * ``placement_kind``: where the kit places instances, ``"CPU"`` (default) or ``"GPU"`` for a backend that
      serves GPU instances only.
    """

    deterministic: ClassVar[bool] = True
    placement_kind: ClassVar[str] = "CPU"
    validates_model_file: ClassVar[bool] = True
    concurrent_rounds: ClassVar[int] = 10

    # --------------------------------------------------------------------------- abstract fixtures
    @pytest.fixture
    def backend(self) -> Backend:
        """The backend under test (the object its BackendSpec factory returns)."""
        pytest.fail(f"{type(self).__name__} must provide the fixture 'backend'")

    @pytest.fixture
    def model_source_and_config(self) -> tuple[ModelSource, ModelConfig]:
        """A model of this backend: where it lives and its (possibly partial) configuration."""
        pytest.fail(f"{type(self).__name__} must provide the fixture 'model_source_and_config'")

    # ------------------------------------------------------------------------- derived fixtures
    @pytest.fixture
    def loaded_config(self, backend: Backend, model_source_and_config: tuple[ModelSource, ModelConfig]) -> ModelConfig:
        """The config the kernel would load the model with: named after its folder, auto-completed by the
        backend, then normalized (Triton's defaults and checks)."""
        source, config = model_source_and_config
        config = _copy(config)
        config.name = config.name or source.name
        completed = backend.auto_complete_config(source, config)
        return normalize_model_config(completed, model_name=source.name, source=f"{source.model_dir}")

    @pytest.fixture
    def sample_requests(self, loaded_config: ModelConfig) -> Sequence[InferenceRequest]:
        """Requests valid for the model; by default a batch-1 request and (batching models) a batch-2 one,
        with only the required inputs and small random values."""
        requests = [build_request(loaded_config, batch_size=1, request_id="sample-0")]
        if loaded_config.max_batch_size > 1:
            requests.append(
                build_request(loaded_config, batch_size=2, rng=np.random.default_rng(1), request_id="sample-1")
            )
        return requests

    @pytest.fixture
    def request_strategy(self, loaded_config: ModelConfig) -> st.SearchStrategy[InferenceRequest]:
        """Hypothesis strategy of requests for the generated-request test (required inputs only)."""
        return requests_for(loaded_config, include_optional=False)

    @pytest.fixture
    def instance(
        self,
        backend: Backend,
        model_source_and_config: tuple[ModelSource, ModelConfig],
        loaded_config: ModelConfig,
    ) -> Iterator[ModelInstance]:
        """One instance of the model, closed after the test."""
        source, _ = model_source_and_config
        instance = backend.create_instance(source, loaded_config, placement(loaded_config, 0, self.placement_kind))
        yield instance
        instance.close()

    # ------------------------------------------------------------------------------ availability
    def test_availability_is_none_or_a_reason(self, backend: Backend) -> None:
        reason = backend.availability()
        assert reason is None or (isinstance(reason, str) and reason), (
            f"availability() must return None or a non-empty reason, got {reason!r}"
        )

    # ----------------------------------------------------------------------------- auto-complete
    def test_auto_complete_returns_a_model_config(
        self, backend: Backend, model_source_and_config: tuple[ModelSource, ModelConfig]
    ) -> None:
        source, config = model_source_and_config
        completed = backend.auto_complete_config(source, _copy(config))
        assert completed.DESCRIPTOR.full_name == "inference.ModelConfig", (
            f"auto_complete_config returned {type(completed).__name__}, not a ModelConfig"
        )

    def test_auto_complete_keeps_what_the_config_set(
        self, backend: Backend, model_source_and_config: tuple[ModelSource, ModelConfig]
    ) -> None:
        source, config = model_source_and_config
        completed = backend.auto_complete_config(source, _copy(config))
        assert is_refinement(config, completed) == []

    def test_auto_complete_is_idempotent(
        self, backend: Backend, loaded_config: ModelConfig, model_source_and_config: tuple[ModelSource, ModelConfig]
    ) -> None:
        source, _ = model_source_and_config
        again = backend.auto_complete_config(source, _copy(loaded_config))
        assert again == loaded_config, "auto-completing a completed config changed it"

    def test_auto_complete_of_a_config_without_tensors(
        self, backend: Backend, model_source_and_config: tuple[ModelSource, ModelConfig]
    ) -> None:
        """With inputs and outputs left out, auto-complete fills them from the model or leaves them out
        (the kernel then reports the missing tensors); it may also refuse with ConfigError. It never
        raises anything else, and completing the result again changes nothing."""
        source, config = model_source_and_config
        stripped = _copy(config)
        del stripped.input[:]
        del stripped.output[:]
        try:
            completed = backend.auto_complete_config(source, _copy(stripped))
        except (ConfigError, TritiumError):
            return
        assert is_refinement(stripped, completed) == []
        assert backend.auto_complete_config(source, _copy(completed)) == completed

    # ----------------------------------------------------------------------------------- instances
    def test_create_instance_returns_a_model_instance(self, instance: ModelInstance) -> None:
        assert isinstance(instance, ModelInstance)

    def test_close_twice_is_safe(
        self,
        backend: Backend,
        model_source_and_config: tuple[ModelSource, ModelConfig],
        loaded_config: ModelConfig,
    ) -> None:
        source, _ = model_source_and_config
        instance = backend.create_instance(source, loaded_config, placement(loaded_config, 0, self.placement_kind))
        instance.close()
        instance.close()

    def test_broken_model_file_is_a_tritium_error(
        self,
        backend: Backend,
        model_source_and_config: tuple[ModelSource, ModelConfig],
        loaded_config: ModelConfig,
        tmp_path: Path,
    ) -> None:
        if not self.validates_model_file:
            pytest.skip("this backend does not read its model file's content")
        source, _ = model_source_and_config
        if not source.model_file.is_file():
            pytest.skip("the model file is a directory or missing")
        version_dir = tmp_path / "broken-copy" / source.name / str(source.version)
        shutil.copytree(source.version_dir, version_dir)
        broken = version_dir / source.model_file.relative_to(source.version_dir)
        broken.write_bytes(b"\x00\xffthis is not a model\x00" * 4)
        broken_source = ModelSource(
            name=source.name,
            version=source.version,
            model_dir=version_dir.parent,
            version_dir=version_dir,
            model_file=broken,
            backend_options=source.backend_options,
        )
        with pytest.raises((TritiumError, ConfigError)):
            where = placement(loaded_config, 0, self.placement_kind)
            instance = backend.create_instance(broken_source, loaded_config, where)
            instance.close()

    # ------------------------------------------------------------------------------------ execute
    @staticmethod
    def _skip_if_decoupled(config: ModelConfig) -> None:
        if is_decoupled(config):
            pytest.skip("decoupled models are served by execute_decoupled")

    def test_execute_returns_every_requested_output(
        self, instance: ModelInstance, loaded_config: ModelConfig, sample_requests: Sequence[InferenceRequest]
    ) -> None:
        self._skip_if_decoupled(loaded_config)
        names = [o.name for o in loaded_config.output]
        for request in sample_requests:
            request.requested_outputs = []
            batch = batch_of(loaded_config, [request])
            outputs = instance.execute(batch)
            assert check_outputs(loaded_config, outputs, names, request.batch_size) == []

    def test_execute_needs_to_return_only_requested_outputs(
        self, instance: ModelInstance, loaded_config: ModelConfig, sample_requests: Sequence[InferenceRequest]
    ) -> None:
        self._skip_if_decoupled(loaded_config)
        for output in loaded_config.output:
            request = sample_requests[0]
            request.requested_outputs = [RequestedOutput(output.name)]
            outputs = instance.execute(batch_of(loaded_config, [request]))
            assert check_outputs(loaded_config, outputs, [output.name], request.batch_size) == []

    def test_execute_async_matches_execute(
        self, instance: ModelInstance, loaded_config: ModelConfig, sample_requests: Sequence[InferenceRequest]
    ) -> None:
        """An instance with ``execute_async`` (awaited on the event loop, up to ``pipeline_depth`` at once)
        returns what ``execute`` returns, and ``execute`` still works once that loop is gone."""
        self._skip_if_decoupled(loaded_config)
        if type(instance).execute_async is ModelInstance.execute_async:
            pytest.skip("the instance has no execute_async (its executions run on worker threads)")
        names = [o.name for o in loaded_config.output]
        depth = max(1, int(getattr(instance, "pipeline_depth", 1)))
        requests = [sample_requests[i % len(sample_requests)] for i in range(max(depth, len(sample_requests)))]
        for request in requests:
            request.requested_outputs = []

        async def run_all() -> list[Mapping[str, Any]]:
            return list(await asyncio.gather(*(
                instance.execute_async(batch_of(loaded_config, [request])) for request in requests[:depth]
            )))

        awaited = asyncio.run(run_all())
        for request, outputs in zip(requests, awaited, strict=False):
            assert check_outputs(loaded_config, outputs, names, request.batch_size) == []
            if self.deterministic:
                direct = instance.execute(batch_of(loaded_config, [request]))
                for name in names:
                    assert _equal(np.asarray(outputs[name]), np.asarray(direct[name])), (
                        f"output {name!r} differs between execute_async and execute"
                    )

    def test_batched_execution_matches_single_executions(
        self, instance: ModelInstance, loaded_config: ModelConfig, sample_requests: Sequence[InferenceRequest]
    ) -> None:
        self._skip_if_decoupled(loaded_config)
        if loaded_config.max_batch_size < 2:
            pytest.skip("the model does not batch")
        first = build_request(loaded_config, batch_size=1, rng=np.random.default_rng(7))
        second = build_request(loaded_config, batch_size=1, rng=np.random.default_rng(8))
        names = [o.name for o in loaded_config.output]
        batched = instance.execute(batch_of(loaded_config, [first, second]))
        assert check_outputs(loaded_config, batched, names, 2) == []
        if not self.deterministic:
            return
        for index, request in enumerate((first, second)):
            single = instance.execute(batch_of(loaded_config, [request]))
            for name in names:
                assert _equal(np.asarray(batched[name])[index : index + 1], np.asarray(single[name])), (
                    f"output {name!r} of request {index} differs between batched and single execution"
                )

    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.differing_executors
        ],
    )
    @given(data=st.data())
    def test_execute_generated_requests(
        self,
        instance: ModelInstance,
        loaded_config: ModelConfig,
        request_strategy: st.SearchStrategy[InferenceRequest],
        data: st.DataObject,
    ) -> None:
        request = data.draw(request_strategy)
        if is_decoupled(loaded_config):
            self._check_decoupled(loaded_config, run_decoupled(instance, request), request)
            return
        batch = batch_of(loaded_config, [request])
        outputs = instance.execute(batch)
        assert check_outputs(loaded_config, outputs, sorted(batch.requested_outputs), request.batch_size) == []

    def test_concurrent_execute_on_two_instances(
        self,
        backend: Backend,
        model_source_and_config: tuple[ModelSource, ModelConfig],
        loaded_config: ModelConfig,
        sample_requests: Sequence[InferenceRequest],
    ) -> None:
        source, _ = model_source_and_config
        instances = [
            backend.create_instance(source, loaded_config, placement(loaded_config, i, self.placement_kind))
            for i in range(2)
        ]
        decoupled = is_decoupled(loaded_config)

        def run(instance: ModelInstance) -> list[Any]:
            results: list[Any] = []
            for _ in range(self.concurrent_rounds):
                for request in sample_requests:
                    if decoupled:
                        results.append(run_decoupled(instance, request))
                    else:
                        results.append(instance.execute(batch_of(loaded_config, [request])))
            return results

        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [pool.submit(run, inst) for inst in instances]
                results = [f.result(timeout=_TIMEOUT_S) for f in futures]
        finally:
            for inst in instances:
                inst.close()
        names = [o.name for o in loaded_config.output]
        per_round = len(sample_requests)
        for thread_results in results:
            for i, result in enumerate(thread_results):
                request = sample_requests[i % per_round]
                if decoupled:
                    self._check_decoupled(loaded_config, result, request)
                else:
                    assert check_outputs(loaded_config, result, names, request.batch_size) == []
        if self.deterministic and not decoupled:
            for a, b in zip(results[0], results[1], strict=True):
                for name in names:
                    assert _equal(np.asarray(a[name]), np.asarray(b[name])), (
                        f"output {name!r} differs between two instances run concurrently"
                    )

    # ---------------------------------------------------------------------------------- decoupled
    @staticmethod
    def _check_decoupled(
        config: ModelConfig, sent: list[tuple[Mapping[str, Any] | None, bool]], request: InferenceRequest
    ) -> None:
        finals = [i for i, (_, final) in enumerate(sent) if final]
        assert finals == [len(sent) - 1], (
            f"a decoupled model must send the final flag exactly once, last; flags were {[final for _, final in sent]}"
        )
        wanted = {o.name for o in request.requested_outputs}
        for outputs, _ in sent:
            if outputs is None:
                continue
            names = sorted(wanted or set(outputs))
            assert check_outputs(config, outputs, names, request.batch_size) == []

    def test_decoupled_sends_final_flag_last(
        self, instance: ModelInstance, loaded_config: ModelConfig, sample_requests: Sequence[InferenceRequest]
    ) -> None:
        if not is_decoupled(loaded_config):
            pytest.skip("not a decoupled model")
        for request in sample_requests:
            self._check_decoupled(loaded_config, run_decoupled(instance, request), request)
