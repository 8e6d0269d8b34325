"""The kernel's in-process request path, side by side with an older kernel: ``infer_nowait`` on a fast identity
model served by the default scheduler (the path the HTTP fast path takes), requests per second.

Used for issue 10 (the scheduler contract and the instance pool split into leases, inline policy, output rendering
and accounting) to check that the new contract costs the hot path nothing::

    git archive <old-commit> core/src | tar -x -C /tmp/old
    python bench/kernel_hot_path.py --before /tmp/old/core/src --rounds 3

Each measurement runs in its own interpreter (the two kernels cannot share one), alternating old and new so the
shared machine's noise hits both; the best of 5 x 20,000 requests per run is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap

_RUN = textwrap.dedent(
    """
    import asyncio, tempfile, time
    import numpy as np
    import tritium
    import tritium.testing.fakes as fakes
    try:
        from tritium._plugins.host import PluginHost
        builtin = "tritium._runtime.builtin"
    except ImportError:  # kernels before the layered layout
        from tritium._plugins import PluginHost
        builtin = "tritium._builtin"

    async def main():
        repo = tempfile.mkdtemp()
        fakes.write_identity_model(repo, "m", max_batch_size=8)
        host = PluginHost(discover=False, extra_plugins=[("builtin", builtin), ("fakes", fakes)])
        host.load()
        options = tritium.ServerOptions(model_repositories=(repo,), inline_execution_us=20000)
        server = tritium.Server(options, host=host)
        await server.start()
        service = server.service
        data = np.ones((1, 4), np.float32)
        tensor = tritium.Tensor("INPUT0", tritium.DataType.FP32, data)
        async def run(n):
            for _ in range(n):
                r = service.infer_nowait(tritium.InferenceRequest(model_name="m", inputs={"INPUT0": tensor}))
                if not isinstance(r, tritium.InferenceResponse):
                    await r
        await run(200)  # measured on worker threads first, then inline
        best = 0.0
        for _ in range(5):
            start = time.perf_counter()
            await run(20000)
            best = max(best, 20000 / (time.perf_counter() - start))
        print(best)
        await server.stop(timeout=5)

    asyncio.run(main())
    """
)


def measure(src: str | None) -> float:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", _RUN], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="core/src folder of the older kernel to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    old: list[float] = []
    new: list[float] = []
    for _ in range(args.rounds):
        if args.before:
            old.append(measure(args.before))
        new.append(measure(None))
    if old:
        print(f"before: median {statistics.median(old):,.0f} req/s  ({', '.join(f'{v:,.0f}' for v in old)})")
    print(f"now:    median {statistics.median(new):,.0f} req/s  ({', '.join(f'{v:,.0f}' for v in new)})")
    if old:
        print(f"ratio now/before: {statistics.median(new) / statistics.median(old):.2f}")


if __name__ == "__main__":
    main()
