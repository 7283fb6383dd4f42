"""``kerasparse report``: re-draw a run's plots and compare several runs in one table."""

import enum
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from kerasparse.cli._app import app, console, fail

# (row key, header); a column whose value is the same in every row moves to the title, so
# the table stays readable in an 80-column terminal.
COLUMNS = (("run", "run"), ("status", "status"), ("model", "model"), ("dataset", "data"),
           ("controller", "ctrl"), ("backend", "backend"), ("epochs", "epochs"),
           ("best_test_accuracy", "best acc"), ("best_epoch", "at ep"),
           ("measured_sparsity", "sparsity"), ("resets", "resets"), ("wall_time_s", "wall s"))
SHARED = ("status", "model", "dataset", "controller", "backend", "epochs")


class Layout(str, enum.Enum):
    runs = "runs"
    table1 = "table1"


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(
        help="Run directories, or sweep folders (each: its cells in the table, and Dent & "
             "Tanner's Fig. 5/6 layout across seeds in <sweep>/figure.png).",
        show_default=False)],
    json_: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not re-draw plots.")] = False,
    layout: Annotated[
        Layout,
        typer.Option("--layout", help="runs: one row per run directory; table1: sweep "
                     "directories over sparsity x v_prime x q_star as Dent & Tanner's Tables "
                     "1, 2, 4 (rows s x V'(q*), columns q*: median final test accuracy, "
                     "measured sparsity).", case_sensitive=False),
    ] = Layout.runs,
    figure: Annotated[Optional[Path], typer.Option(
        help="With several runs: where the combined figure goes (default: report.png in "
             "their common parent folder).")] = None,
):
    """Re-draw training.png for each run (a sweep's figure across seeds), draw several runs
    in one figure, and print a comparison table (or, with --layout table1, a sweep's
    aggregate as Dent & Tanner's Table 1)."""
    if layout is Layout.table1:
        _table1(runs, json_)
        return
    from rich.table import Table

    from kerasparse import report as ks_report
    from kerasparse import rundir

    sweeps, cells, plain = [], [], []
    for run in runs:
        try:
            if ks_report.is_sweep(str(run)):
                sweeps.append(str(run))
                cells += ks_report.sweep_cells(str(run))
            else:
                cells.append(str(run))
                plain.append(str(run))
        except rundir.RunDirError as exc:
            fail(str(exc))
    rows = []
    for cell in cells:
        try:
            rows.append(ks_report.run_row(cell))
        except rundir.RunDirError as exc:
            fail(str(exc))
    if not no_plots:  # every run is read and checked before any plot
        where = None
        try:
            for cell in plain:  # a sweep's cells drew theirs when they finished
                where = os.path.join(cell, "training.png")
                ks_report.plot_run(cell)
            for sweep in sweeps:
                where = os.path.join(sweep, "figure.png")
                ks_report.plot_sweep(sweep)
            if len(cells) > 1 and not sweeps:
                where = str(figure or os.path.join(_common_parent(cells), "report.png"))
                ks_report.plot_runs(cells, where)
        except OSError as exc:  # a read-only run directory, a full disk
            fail(f"cannot write {where} ({exc.strerror or exc}); pass --no-plots to only "
                 "print the table", code=1)
    if json_:
        print(json.dumps(rows, indent=2))
        return
    console.print(_table(Table, rows))


def _table1(sweeps, json_):
    """``--layout table1``: each sweep's aggregate (sweep.json) pivoted; nothing is written."""
    from kerasparse import rundir
    from kerasparse import sweep as ks_sweep

    found = []
    for path in sweeps:
        try:
            found.append((path, ks_sweep.table1(ks_sweep.read_table_rows(str(path)))))
        except (rundir.RunDirError, ValueError) as exc:
            fail(f"{path}: {exc}")
    if json_:
        print(json.dumps([{"sweep": str(p), "tables": t} for p, t in found], indent=2,
                         default=str))
        return
    for path, tables in found:
        console.print(f"{path} (Dent & Tanner Table 1 layout: median final test accuracy, "
                      "measured sparsity)", highlight=False, markup=False)
        console.print(ks_sweep.format_table1(tables), highlight=False, markup=False,
                      soft_wrap=True)


def _common_parent(paths):
    return os.path.dirname(os.path.commonpath([os.path.abspath(p) for p in paths]))


def _table(Table, rows):
    """The comparison table: runs named by their folder names (relative to the common parent
    where names repeat), values shared by every run in the title, columns no run has (resets
    without a controller) left out, the run column folding rather than the numbers
    wrapping."""
    shared = {key: rows[0][key] for key in SHARED if len({str(r[key]) for r in rows}) == 1}
    title = "kerasparse runs" + "".join(f", {key} {value}" for key, value in shared.items()
                                        if value is not None)
    names = [os.path.basename(os.path.normpath(r["run"])) for r in rows]
    if len(set(names)) < len(names):
        parent = os.path.commonpath([os.path.abspath(r["run"]) for r in rows])
        names = [os.path.relpath(os.path.abspath(r["run"]), parent) for r in rows]
    table = Table(title=title, pad_edge=False, collapse_padding=True)
    columns = [(key, header) for key, header in COLUMNS if key not in shared
               and (key == "run" or any(r[key] is not None for r in rows))]
    for key, header in columns:
        if key == "run":
            table.add_column(header, overflow="fold", ratio=1, min_width=12)
        else:
            table.add_column(header, no_wrap=True, justify="left" if key in SHARED else "right")
    for name, row in zip(names, rows):
        table.add_row(*(name if key == "run" else _cell(row[key], key) for key, _ in columns))
    return table


def _cell(value, key=None):
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "nan"
    if key in ("resets", "best_epoch") and isinstance(value, float) and value.is_integer():
        return str(int(value))  # counts (history.csv holds them as numbers)
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return str(value)
