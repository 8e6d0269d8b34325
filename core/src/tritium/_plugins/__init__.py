"""The plugin host: entry points, hooks, registries, the kernel's flag table. Below the runtime and the CLI."""
