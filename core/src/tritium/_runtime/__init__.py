"""The running server: model repository and lifecycle, instances and their executor, schedulers' kernel side,
the data plane, the model client, shared memory, settings, the Server. Never imports :mod:`tritium._cli.commands`."""
