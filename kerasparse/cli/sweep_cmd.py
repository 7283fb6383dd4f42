"""``kerasparse sweep``: a grid of training runs on this machine or on Ray, then a table.

A thin command line over :func:`kerasparse.sweep.run` (cells, executors, retries, progress and
the Dent & Tanner Table 1 style aggregate live there).
"""

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from kerasparse.cli._app import BackendOption, app, console, fail


class Executor(str, enum.Enum):
    local = "local"
    ray = "ray"


@app.command()
def sweep(
    preset: Annotated[Path, typer.Argument(help="Preset TOML file.", show_default=False)],
    grid: Annotated[
        Optional[list[str]], typer.Option("--grid", help="key=v1,v2,... (repeatable).")
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per grid point.", min=1)] = 1,
    out: Annotated[Optional[Path], typer.Option("--out", help="Sweep directory.")] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="key=value for every cell.")
    ] = None,
    backend: BackendOption = None,
    executor: Annotated[
        Executor,
        typer.Option("--executor", help="local: subprocesses on this machine; ray: Ray tasks "
                     "(pip install 'kerasparse[ray]').", case_sensitive=False),
    ] = Executor.local,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", help="Cells at a time (local default: one per GPU, else 1; "
                     "ray default: as many as the cluster fits).", show_default=False),
    ] = None,
    cpus_per_cell: Annotated[
        Optional[float],
        typer.Option("--cpus-per-cell", help="CPU threads of a cell (ray: Ray CPUs; default 1).",
                     show_default=False),
    ] = None,
    gpus_per_cell: Annotated[
        Optional[float],
        typer.Option("--gpus-per-cell", help="Ray GPUs of a cell; fractions share a GPU "
                     "(default 1 if the cluster has GPUs, else 0).", show_default=False),
    ] = None,
    address: Annotated[
        Optional[str],
        typer.Option("--address", help="Ray cluster to join (host:port; default $RAY_ADDRESS, "
                     "else a local Ray instance).", show_default=False),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", help="Retries of a failed cell before it is marked failed.")
    ] = 1,
    pack: Annotated[
        int,
        typer.Option("--pack", help="Train up to N cells as one program (cells that differ "
                     "only in seed, sparsity, q_star, v_prime; packable models and optimizers "
                     "only); 1: each cell on its own."),
    ] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the cells only.")] = False,
):
    """Run PRESET over a grid of config values and seeds; aggregate a results table."""
    from kerasparse import config as ks_config
    from kerasparse import rundir
    from kerasparse import sweep as ks_sweep

    try:
        table = ks_sweep.run(
            preset, grid=grid or [], seeds=seeds, sets=set_ or [], out=out,
            backend=backend.value if backend is not None else None, executor=executor.value,
            workers=workers, cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell,
            address=address, retries=retries, pack=pack, dry_run=dry_run, console=console,
        )
    except (ks_config.ConfigError, rundir.RunDirError) as exc:
        fail(str(exc))
    if table.interrupted:
        console.print(f"Interrupted; re-run the same command to continue ({table.out})")
        raise typer.Exit(130)
    if table.failed:
        fail(f"{len(table.failed)} of {len(table.cells)} cells failed ({', '.join(table.failed)}); "
             "see the lines above and their *.failed.json; re-run the same command to retry "
             "them", code=1)
