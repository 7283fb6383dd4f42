"""``kerasparse eoc``: edge-of-chaos settings (tau, m, sigma_w^2, sigma_b^2) and diagnostics.

Pure SciPy (kerasparse.eoc): no Keras backend is imported.
"""

import enum
import itertools
import json
import math
import os
from typing import Annotated, Optional

import typer

from kerasparse.cli._app import app, console, fail


class EoCActivation(str, enum.Enum):
    crelu = "crelu"
    cst = "cst"
    relu = "relu"
    hard_shrink = "hard_shrink"
    chard_shrink = "chard_shrink"
    sawtooth = "sawtooth"
    shifted_relu = "shifted_relu"
    soft_threshold = "soft_threshold"


def _floats(option, text):
    """Parse a comma list of numbers ("0.8,0.85"); None stays None."""
    if text is None:
        return [None]
    values = []
    for item in str(text).split(","):
        try:
            values.append(float(item))
        except ValueError:
            fail(f"{option} takes a number or a comma list of numbers; got {item.strip()!r}")
    return values


def _num(x, digits=4):
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"


def _json_value(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


@app.command()
def eoc(
    activation: Annotated[
        EoCActivation, typer.Option(help="Activation phi.", case_sensitive=False)
    ] = EoCActivation.crelu,
    sparsity: Annotated[
        Optional[str],
        typer.Option(help="Target fraction of zeros s in (0, 1), or a comma list."),
    ] = None,
    q_star: Annotated[
        str, typer.Option("--q-star", help="Fixed-point variance q* > 0, or a comma list.")
    ] = "1",
    v_prime: Annotated[
        Optional[str],
        typer.Option(
            "--v-prime",
            help="Target V'(q*) (clipped activations: crelu, cst, chard_shrink, sawtooth), "
            "or a comma list.",
        ),
    ] = None,
    alpha: Annotated[
        Optional[float], typer.Option(help="HardShrink/CHardShrink ramp slope (default 10).")
    ] = None,
    eps: Annotated[
        Optional[float], typer.Option(help="HardShrink/CHardShrink ramp half-width (default 0.01).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (an object, or a list for a grid).")
    ] = False,
    plot: Annotated[
        Optional[str],
        typer.Option(help="Write a PNG of V(q) against the identity and chi_1(q) to this file."),
    ] = None,
):
    """Solve the edge-of-chaos recipe (Dent & Tanner 2026, sec. 2) for one setting or a grid.

    Example: kerasparse eoc --activation crelu --sparsity 0.85 --q-star 3 --v-prime 0.7
    """
    from kerasparse import eoc as eoc_lib

    name = activation.value
    extra = {}
    if alpha is not None or eps is not None:
        if name not in ("hard_shrink", "chard_shrink"):
            fail(f"--alpha and --eps apply to hard_shrink and chard_shrink, not {name}")
        extra = {k: v for k, v in (("alpha", alpha), ("eps", eps)) if v is not None}
    if plot is not None and not plot.lower().endswith(".png"):
        fail(f"--plot writes a PNG file; the name must end in .png; got {plot!r}")
    folder = os.path.dirname(os.path.abspath(plot)) if plot is not None else None
    if folder is not None and not os.path.isdir(folder):
        # Checked before solving, so a typo in the folder costs no solve and prints nothing.
        fail(f"cannot write {plot!r}: its folder {folder!r} does not exist")
    grid = list(
        itertools.product(
            _floats("--sparsity", sparsity), _floats("--q-star", q_star),
            _floats("--v-prime", v_prime),
        )
    )
    setups = []
    for s, q, vp in grid:
        try:
            setups.append(eoc_lib.setup(name, sparsity=s, q_star=q, v_prime=vp, **extra))
        except ValueError as exc:
            fail(str(exc))

    if as_json:
        rows = [{k: _json_value(v) for k, v in st.to_dict().items()} for st in setups]
        console.print_json(json.dumps(rows[0] if len(rows) == 1 else rows))
    else:
        _print_table(setups)
    if plot is not None:
        try:
            _plot(setups, plot)
        except OSError as exc:
            fail(f"cannot write {plot!r}: {exc.strerror or exc}")
        if not as_json:
            console.print(f"wrote {plot}")


def _print_table(setups):
    from rich.console import Console
    from rich.table import Table

    # Rich assumes 80 columns when stdout is not a terminal; the 11 columns need ~120.
    out = console if console.is_terminal else Console(width=160)
    table = Table(title="Edge-of-chaos settings (chi_1(q*) = 1, V(q*) = q*)")
    cols = ["activation", "s", "q*", "V'(q*)", "tau", "m", "sigma_w2", "sigma_b2",
            "V''(q*)", "chi1'(q*)", "|q1| bound"]
    for c in cols:
        table.add_column(c, justify="left" if c == "activation" else "right", no_wrap=True)
    notes = set()
    for st in setups:
        table.add_row(
            st.activation, _num(st.sparsity), _num(st.q_star), _num(st.v_prime), _num(st.tau),
            _num(st.m), _num(st.sigma_w2), _num(st.sigma_b2), _num(st.v_second),
            _num(st.chi1_prime), _num(st.q1_bound),
        )
        if st.marginal:
            notes.add(
                f"{st.activation}: V'(q*) = 1 at the edge of chaos (unclipped), so q* is only "
                "marginally stable and the Theorem 2.2 bound is infinite."
            )
    out.print(table)
    for note in sorted(notes):
        out.print(note)


def _plot(setups, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    qmax = 3.0 * max(st.q_star for st in setups)
    qs = np.linspace(qmax / 400.0, qmax, 200)
    fig, (ax_v, ax_c) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax_v.plot(qs, qs, "k--", lw=1, label="identity")
    for st in setups:
        mp = [st.maps(q) for q in qs]
        label = f"{st.activation} s={_num(st.sparsity, 3)} q*={st.q_star:g} V'={_num(st.v_prime, 3)}"
        (line,) = ax_v.plot(qs, [r["V"] for r in mp], label=label)
        ax_v.plot([st.q_star], [st.q_star], "o", color=line.get_color())
        ax_c.plot(qs, [r["chi1"] for r in mp], color=line.get_color(), label=label)
        ax_c.plot([st.q_star], [1.0], "o", color=line.get_color())
    ax_c.axhline(1.0, color="k", ls="--", lw=1)
    ax_v.set(xlabel="q", ylabel="V(q)", title="Variance map V(q) and the identity")
    ax_c.set(xlabel="q", ylabel="chi_1(q)", title="chi_1(q) (= 1 at q* on the edge of chaos)")
    ax_v.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
