"""The ``store-agent`` command line (typer)."""
