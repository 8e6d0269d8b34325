"""The serving processes' heap freeze (``tritium._runtime.heap``): startup objects leave the collector's
walks, and what an unloaded model leaves behind, cycles included, is still collected."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_isolated(code: str) -> str:
    """Run ``code`` in a fresh interpreter (freezing this test process's heap would outlive the test)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_heap_is_frozen_once_the_server_is_up_and_new_objects_are_collected_as_usual() -> None:
    out = run_isolated(
        """
        import gc, weakref
        from tritium._runtime.heap import freeze_long_lived

        class Node: pass
        freeze_long_lived()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 10_000
        young = Node(); young.self = young  # a cycle made after the freeze
        probe = weakref.ref(young); del young
        gc.collect()
        print(probe() is None)
        """
    )
    assert out == "True"


def test_a_cycle_frozen_at_startup_is_collected_after_a_model_is_retired() -> None:
    out = run_isolated(
        """
        import gc, weakref
        from tritium._runtime.heap import collect_retired, freeze_long_lived

        class Model: pass
        model = Model(); model.self = model  # a model loaded before the freeze, with a cycle
        probe = weakref.ref(model)
        freeze_long_lived()
        del model  # unloaded
        gc.collect()
        kept_while_frozen = probe() is not None  # frozen objects are never walked
        collect_retired()
        print(kept_while_frozen, probe() is None, gc.get_freeze_count() > 0)
        """
    )
    assert out == "True True True"


def test_a_process_that_never_froze_is_left_alone() -> None:
    out = run_isolated(
        """
        import gc
        from tritium._runtime.heap import collect_retired

        collect_retired()
        print(gc.get_freeze_count())
        """
    )
    assert out == "0"


def test_a_collector_switched_off_or_tuned_higher_is_left_as_it_is() -> None:
    out = run_isolated(
        """
        import gc
        from tritium._runtime.heap import freeze_long_lived

        gc.set_threshold(50_000, 5, 5)
        freeze_long_lived()
        tuned = gc.get_threshold()
        gc.set_threshold(0)
        freeze_long_lived()
        print(tuned, gc.get_threshold()[0])
        """
    )
    assert out == "(50000, 5, 5) 0"


def test_a_burst_of_retired_models_is_collected_once_after_the_last_and_never_during_shutdown() -> None:
    out = run_isolated(
        """
        import asyncio, gc, weakref
        from tritium._runtime import heap

        heap.COLLECT_AFTER_S = 0.05
        class Model: pass
        models = [Model() for _ in range(3)]
        for model in models:
            model.self = model
        del model
        probes = [weakref.ref(m) for m in models]
        heap.freeze_long_lived()
        runs = []
        real = heap.collect_retired
        heap.collect_retired = lambda: (runs.append(1), real())

        async def main():
            retired = heap.RetiredCollection()
            for index in range(3):  # three unloads in a burst
                models[index] = None
                retired.schedule()
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            collected = all(p() is None for p in probes)
            stopping = heap.RetiredCollection()
            stopping.schedule()
            stopping.stop()  # shutdown: the scheduled collection is dropped
            await asyncio.sleep(0.2)
            return collected

        print(asyncio.run(main()), len(runs))
        """
    )
    assert out == "True 1"
