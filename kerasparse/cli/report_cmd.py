"""``kerasparse report``: re-draw a run's plots and compare several runs in one table."""

import enum
import json
from pathlib import Path
from typing import Annotated

import typer

from kerasparse.cli._app import app, console, fail


class Layout(str, enum.Enum):
    runs = "runs"
    table1 = "table1"


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories.", show_default=False)],
    json_: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not re-draw plots.")] = False,
    layout: Annotated[
        Layout,
        typer.Option("--layout", help="runs: one row per run directory; table1: sweep "
                     "directories over sparsity x v_prime x q_star as Dent & Tanner's Tables "
                     "1, 2, 4 (rows s x V'(q*), columns q*: median final test accuracy, "
                     "measured sparsity).", case_sensitive=False),
    ] = Layout.runs,
):
    """Re-draw training.png for each run and print a comparison table."""
    if layout is Layout.table1:
        _table1(runs, json_)
        return
    from rich.table import Table

    from kerasparse import report as ks_report
    from kerasparse import rundir

    rows = []
    for run in runs:
        try:
            rows.append(ks_report.run_row(str(run)))
        except rundir.RunDirError as exc:
            fail(str(exc))
    for run in [] if no_plots else runs:  # every run is read and checked before any plot
        try:
            ks_report.plot_run(str(run))
        except OSError as exc:  # a read-only run directory, a full disk
            fail(f"cannot write {run / 'training.png'} ({exc.strerror or exc}); pass "
                 "--no-plots to only print the table", code=1)
    if json_:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="kerasparse runs")
    columns = ("run", "status", "model", "dataset", "controller", "backend", "epochs",
               "best_test_accuracy", "best_epoch", "final_nz", "resets", "wall_time_s")
    headers = ("run", "status", "model", "data", "ctrl", "backend", "epochs", "best test acc",
               "at epoch", "final nz", "resets", "wall s")
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    console.print(table)


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


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return str(value)
