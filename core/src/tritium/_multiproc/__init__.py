"""Serving on every core: frontends in worker processes, models in one executor process (``--workers``).

Layer 5 of the kernel, between the runtime (which it runs in each process) and the command line (which
starts it). See docs/architecture.md, "Process model".
"""
