"""``kerasparse models``: the registered model presets."""

from typing import Annotated

import typer

from kerasparse.cli._app import UsageError, app, console, fail, use_backend


@app.command()
def models(
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Also show each preset's constructor arguments.")
    ] = False,
):
    """List the model presets: name, trainable parameters, description."""
    try:
        use_backend(None)  # importing the builders imports Keras
    except UsageError as exc:
        fail(str(exc))
    from rich.table import Table

    from kerasparse.models import MODELS

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
