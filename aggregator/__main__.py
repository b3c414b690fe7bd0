"""`python -m aggregator` is the `flares` command."""

from aggregator.cli import app

app(prog_name="flares")
