"""``kerasparse models``: the registered model presets (kerasparse.presets; no backend import)."""

from typing import Annotated

import typer

from kerasparse.cli._app import app, console


@app.command()
def models(
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Also show each preset's constructor arguments.")
    ] = False,
):
    """List the model presets: name, trainable parameters, description."""
    from rich.table import Table

    from kerasparse.presets import MODELS  # plain data: the counts are closed forms

    table = Table(title="kerasparse models (use with --model NAME)")
    table.add_column("name", style="bold")
    table.add_column("builder")
    table.add_column("parameters", justify="right")
    table.add_column("description")
    if defaults:
        table.add_column("defaults")
    for name, spec in MODELS.items():
        row = [name, spec.builder, f"{spec.parameter_count():,}", spec.description]
        if defaults:
            row.append(", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()))
        table.add_row(*row)
    console.print(table)
