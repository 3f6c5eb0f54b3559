"""Store Edge Agent: the per-store edge daemon (config, CLI, supervisor, local store, pipelines)."""

__version__ = "0.1.0"
