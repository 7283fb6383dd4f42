"""``kerasparse train-pack`` (hidden): several cells of a sweep trained as one program.

What ``kerasparse sweep --pack N`` runs in a subprocess for each pack (as it runs ``kerasparse
train`` for a single cell); a thin layer over :func:`kerasparse.packed.train_pack`. The
cells' full configurations travel on the command line, so no preset file has to reach the
machine that runs it: the settings every cell of the pack shares as ``--set key=value``
(those that differ from the defaults), and each cell's own settings
(:data:`kerasparse.packed.PER_MEMBER`) as ``--cell DIR --member seed=S,sparsity=...``.

    python -m kerasparse.cli train-pack --backend jax --set epochs=2 ... \\
        --cell runs/s/sparsity=0.8_seed=3407 --member seed=3407,sparsity=0.8 \\
        --cell runs/s/sparsity=0.9_seed=3407 --member seed=3407,sparsity=0.9
    python -m kerasparse.cli train-pack --backend jax --resume --cell DIR --cell DIR ...

Exit codes as ``kerasparse train``: 0 (every cell completed), 3 (some diverged, the others
completed), 130 (interrupted: a re-run resumes), 2 (bad input, nothing written).
"""

from typing import Annotated, Optional

import typer

from kerasparse.cli._app import BackendOption, UsageError, app, console, fail, use_backend


def _member(text):
    """``seed=3407,sparsity=0.8`` -> ``{"seed": 3407, "sparsity": 0.8}`` (PER_MEMBER keys)."""
    from kerasparse import config as ks_config
    from kerasparse.packed import PER_MEMBER

    values = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, value = ks_config.parse_assignment(item)
        if key not in PER_MEMBER:
            raise UsageError(f"--member takes only {', '.join(PER_MEMBER)}; give the shared "
                             f"settings with --set. Received: {item!r}")
        values[key] = value
    return values


@app.command("train-pack", hidden=True)
def train_pack(
    cell: Annotated[
        list[str],
        typer.Option("--cell", help="Run directory of a cell (repeatable, in pack order).",
                     show_default=False),
    ],
    member: Annotated[
        Optional[list[str]],
        typer.Option("--member", help="A cell's own settings, one per --cell: "
                     "seed=S,sparsity=X,q_star=Q,v_prime=V.", show_default=False),
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="A setting every cell shares: key=value (repeatable).",
                     show_default=False),
    ] = None,
    backend: BackendOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the cells from their checkpoints.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace cell directories that hold a run.")
    ] = False,
    memory_limit: Annotated[
        Optional[int],
        typer.Option("--memory-limit", help="Bytes the pack may use (default: 90% of the "
                     "device's free memory).", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Train several compatible cells as one packed program (used by `sweep --pack`)."""
    from kerasparse import config as ks_config
    from kerasparse import rundir

    try:
        if resume:
            if member or set_ or overwrite:
                raise UsageError("--resume reads each cell's config.json; drop --member, --set "
                                 "and --overwrite")
            configs = [_saved(c) for c in cell]
            saved = {c.get("backend") for c in configs} - {None}
            if len(saved) > 1:
                raise UsageError(f"the cells were trained on different backends "
                                 f"({', '.join(sorted(saved))}); they cannot be one pack")
            name = use_backend(backend or (saved.pop() if saved else None))
            if backend is not None and saved and backend.value not in saved:
                raise UsageError(f"the cells were trained on {saved.pop()!r}; resume them on "
                                 "the same backend")
            from kerasparse.cli.train_cmd import _prepare_devices

            _prepare_devices(configs[0], name)
            from kerasparse import packed

            summaries = packed.train_pack(cell, resume=True, backend=name,
                                          verbose=0 if quiet else 1, memory_limit=memory_limit)
        else:
            members = [_member(m) for m in member or []]
            if len(members) != len(cell):
                raise UsageError(f"give one --member per --cell. Received: {len(cell)} --cell, "
                                 f"{len(members)} --member")
            shared = {}
            for key, value in (ks_config.parse_assignment(s) for s in set_ or []):
                shared[key] = value
            configs = [ks_config.resolve(overrides={**shared, **m}) for m in members]
            name = use_backend(backend)
            from kerasparse.cli.train_cmd import _prepare_devices

            _prepare_devices(configs[0], name)  # names were checked by config.resolve
            from kerasparse import packed

            summaries = packed.train_pack(cell, configs, backend=name, overwrite=overwrite,
                                          verbose=0 if quiet else 1, memory_limit=memory_limit)
    except (ks_config.ConfigError, rundir.RunDirError, UsageError) as exc:
        fail(str(exc))
    _print_summaries(cell, summaries)
    statuses = [s["status"] for s in summaries]
    if "interrupted" in statuses:
        raise typer.Exit(130)
    if "diverged" in statuses:
        raise typer.Exit(3)


def _saved(run_dir):
    import os

    from kerasparse import rundir

    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise rundir.RunDirError(
            f"cannot resume {run_dir!r}: no config.json there (not a kerasparse run directory)")
    return rundir.read_json(path)


def _print_summaries(cells, summaries):
    from rich.table import Table

    table = Table(title=f"pack of {len(cells)} cells")
    for column in ("cell", "status", "epochs", "best test accuracy", "wall time"):
        table.add_column(column)
    for path, s in zip(cells, summaries):
        best = s.get("best_test_accuracy")
        table.add_row(path, s["status"], f"{s['epochs_done']} / {s['epochs']}",
                      "-" if best is None else f"{best:.4f}",
                      f"{s.get('wall_time_s', 0.0):.1f} s")
    console.print(table)
