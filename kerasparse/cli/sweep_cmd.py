"""``kerasparse sweep``: a grid of training runs, each in its own subprocess, then a table.

A crash costs one cell; finished cells (completed or diverged) are skipped on re-run, and an
interrupted cell is resumed from its checkpoint. The aggregate table follows Dent & Tanner's
Table 1: per grid point, the median best test accuracy over seeds and the measured sparsity
(1 - nz of the last epoch).
"""

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from kerasparse.cli._app import BackendOption, UsageError, app, console, fail, resolve_backend


def parse_grid(specs):
    """``["sparsity=0.8,0.85", "q_star=1,2"]`` -> {"sparsity": [0.8, 0.85], "q_star": [1, 2]}."""
    from kerasparse import config as ks_config

    grid = {}
    for spec in specs:
        if "=" not in spec:
            raise UsageError(f"--grid expects key=v1,v2,... Received: {spec!r}")
        key, raw = (part.strip() for part in spec.split("=", 1))
        values = [ks_config.parse_scalar(v.strip()) for v in raw.split(",") if v.strip()]
        if not values:
            raise UsageError(f"--grid {key} has no values. Received: {spec!r}")
        if key == "seed":
            raise UsageError("use --seeds N for seeds, not --grid seed=...")
        for value in values:
            ks_config.validate({key: value}, source="--grid")
        grid[key] = values
    return grid


def cell_name(point, seed):
    parts = [f"{k}={v}" for k, v in point.items()] + [f"seed={seed}"]
    return "_".join(parts).replace("/", "-")


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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the cells only.")] = False,
):
    """Run PRESET over a grid of config values and seeds; aggregate a results table."""
    from kerasparse import config as ks_config
    from kerasparse import rundir

    try:
        base = ks_config.resolve(preset)
        points = parse_grid(grid or [])
        for item in set_ or []:
            ks_config.validate(dict([ks_config.parse_assignment(item)]), source="--set")
        name = resolve_backend(backend)
        out = out or Path("runs") / f"sweep-{preset.stem}"
    except (ks_config.ConfigError, UsageError) as exc:
        fail(str(exc))
    keys = list(points)
    cells = []
    for values in itertools.product(*(points[k] for k in keys)) if keys else [()]:
        point = dict(zip(keys, values))
        for i in range(seeds):
            seed = base["seed"] + i
            cells.append((point, seed, out / cell_name(point, seed)))
    if dry_run:
        for point, seed, path in cells:
            console.print(str(path))
        return
    os.makedirs(out, exist_ok=True)
    for n, (point, seed, path) in enumerate(cells, 1):
        status = _cell_status(path)
        if status in ("completed", "diverged"):
            console.print(f"[{n}/{len(cells)}] {path.name}: {status}, skipped")
            continue
        cmd = [sys.executable, "-m", "kerasparse.cli", "train", "--backend", name, "--quiet"]
        if status == "resumable":
            cmd += ["--resume", str(path)]
        else:
            cmd += ["--config", str(preset), "--out", str(path), "--seed", str(seed),
                    "--overwrite"]
            for key, value in point.items():
                cmd += ["--set", f"{key}={_toml(value)}"]
            for item in set_ or []:
                cmd += ["--set", item]
        console.print(f"[{n}/{len(cells)}] {path.name}: running")
        result = subprocess.run(cmd)
        if result.returncode not in (0, 3):  # 3: diverged (recorded in its summary)
            rundir.atomic_write_json(
                os.path.join(path, "failed.json") if os.path.isdir(path) else str(path) + ".failed.json",
                {"returncode": result.returncode, "command": cmd},
            )
            console.print(f"[{n}/{len(cells)}] {path.name}: failed (exit {result.returncode}); going on")
    _aggregate(out, cells, keys)


def _toml(value):
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _cell_status(path):
    from kerasparse import rundir

    summary = path / "summary.json"
    if summary.is_file():
        status = rundir.read_json(summary)["status"]
        if status in ("completed", "diverged"):
            return status
    if (path / "checkpoints" / "latest.json").is_file():
        return "resumable"
    return "new"


def _aggregate(out, cells, keys):
    import csv
    import io

    from rich.table import Table

    from kerasparse import report, rundir

    groups = {}
    for point, seed, path in cells:
        key = tuple(point.get(k) for k in keys)
        groups.setdefault(key, []).append(path)
    rows = []
    for key, paths in groups.items():
        accs, nzs, statuses = [], [], []
        for path in paths:
            if not (path / "config.json").is_file():
                statuses.append("failed")
                continue
            row = report.run_row(str(path))
            statuses.append(row["status"])
            accs.append(row["best_test_accuracy"])
            nzs.append(row["final_nz"])
        nz = report.median(nzs)
        rows.append({
            **dict(zip(keys, key)),
            "runs": len(paths),
            "completed": statuses.count("completed"),
            "diverged": statuses.count("diverged"),
            "failed": statuses.count("failed"),
            "median_best_test_accuracy": report.median(accs),
            "measured_sparsity": None if nz is None else 1.0 - nz,
        })
    fields = list(rows[0]) if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    rundir.atomic_write_text(os.path.join(out, "sweep.csv"), buf.getvalue())
    rundir.atomic_write_json(os.path.join(out, "sweep.json"), rows)
    table = Table(title=f"sweep {out}")
    for field in fields:
        table.add_column(field)
    for row in rows:
        table.add_row(*("-" if row[f] is None else f"{row[f]:.4f}" if isinstance(row[f], float)
                        else str(row[f]) for f in fields))
    console.print(table)
