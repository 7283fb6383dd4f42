"""``kerasparse compare``: the same training configuration on several backends."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Annotated

import typer

from kerasparse.cli._app import BACKEND_MODULES, UsageError, app, console, fail, resolve_backend
from kerasparse.cli._choices import option


def _opt(help_text, *names):
    return typer.Option(*names, help=help_text)


# The config keys' options, made from config.FIELDS as train's (with compare's own defaults).
OPT = types.SimpleNamespace(**{key: option(key, default) for key, default in (
    ("model", None), ("dataset", None), ("epochs", 1), ("batch_size", None), ("keep_ratio", 0.5),
    ("lr", None), ("seed", None), ("steps_per_epoch", None), ("train_examples", None),
    ("test_examples", None), ("precision", None))})


@app.command()
def compare(
    out: Annotated[Path, _opt("Folder for the table and per-backend results.", "--out")],
    backends: Annotated[
        str, _opt("Comma-separated backends, each run in its own process.", "--backends")
    ] = "jax,torch,tensorflow",
    model: OPT.model = "wrn28-4",
    dataset: OPT.dataset = "cifar10",
    epochs: OPT.epochs = 1,
    batch_size: OPT.batch_size = 128,
    keep_ratio: OPT.keep_ratio = 0.5,
    lr: OPT.lr = 0.1,
    seed: OPT.seed = 3407,
    steps_per_epoch: OPT.steps_per_epoch = None,
    train_examples: OPT.train_examples = None,
    test_examples: OPT.test_examples = None,
    precision: OPT.precision = "float32",
    overwrite: Annotated[bool, _opt("Replace results already in --out.", "--overwrite")] = False,
):
    """Train one configuration on several backends from the same initial weights; print and
    save a table (step time, images/s, peak memory, final/best accuracy, initial-loss gap)."""
    names = [b.strip() for b in backends.split(",") if b.strip()]
    if not names:
        fail("--backends must name at least one backend (jax, torch, tensorflow).")
    if len(set(names)) != len(names):
        fail(f"--backends names a backend twice. Received: --backends={backends}")
    try:
        for name in names:
            resolve_backend(name)
    except UsageError as exc:
        fail(str(exc))
    precision = getattr(precision, "value", precision)  # the choice type's value
    overrides = {
        "model": model, "dataset": dataset, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "seed": seed, "precision": precision, "monitor_batch": 0,
    }
    if keep_ratio < 1.0:
        overrides.update(controller="constant", keep_ratio=keep_ratio)
    for key, value in (("steps_per_epoch", steps_per_epoch), ("train_examples", train_examples),
                       ("test_examples", test_examples)):
        if value is not None:
            overrides[key] = value
    from kerasparse.config import ConfigError, resolve

    try:
        resolve(overrides=overrides)  # every value and name, before anything runs
    except ConfigError as exc:
        fail(str(exc))
    from kerasparse.rundir import RunDirError, _check_parent

    try:
        if out.exists() and not out.is_dir():
            raise RunDirError(f"--out {str(out)!r} exists and is not a directory")
        if not out.exists():
            _check_parent(str(out), "--out")
    except (UsageError, RunDirError) as exc:
        fail(str(exc))
    table_path = out / "compare.json"
    if table_path.exists() and not overwrite:
        fail(f"{table_path} exists; pass --overwrite to replace it or choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "initial.weights.h5"
    if weights.exists():
        weights.unlink()  # a fresh comparison: the first backend writes the shared weights

    results = {}
    for name in names:
        spec_path = out / f"{name}.spec.json"
        result_path = out / f"{name}.json"
        if result_path.exists():
            result_path.unlink()
        spec = {"config": overrides, "initial_weights": str(weights), "result": str(result_path)}
        spec_path.write_text(json.dumps(spec, indent=2))
        env = {**os.environ, "KERAS_BACKEND": name}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        console.print(f"[bold]{name}[/]: training ({out / (name + '.log')})", highlight=False)
        with open(out / f"{name}.log", "w") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "kerasparse.compare", str(spec_path)],
                env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
            )
        if proc.returncode != 0 or not result_path.exists():
            results[name] = {"backend": name, "error": f"exit code {proc.returncode}, see {name}.log"}
            console.print(f"[red]{name} failed[/] (exit code {proc.returncode}; see {out / (name + '.log')})")
            continue
        results[name] = json.loads(result_path.read_text())

    ok = [r for r in results.values() if "error" not in r]
    losses = [r["initial_loss"] for r in ok]
    gap = max(losses) - min(losses) if len(losses) > 1 else 0.0
    summary = {"config": overrides, "results": list(results.values()), "initial_loss_max_diff": gap}
    table_path.write_text(json.dumps(summary, indent=2))

    from rich.table import Table

    table = Table(title=f"{model} on {dataset}, batch {batch_size}, {epochs} epoch(s)")
    for column in ("backend", "step (ms)", "images/s", "peak RSS (MiB)", "final acc", "best acc",
                   "initial loss"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    lines = ["| backend | step (ms) | images/s | peak RSS (MiB) | final acc | best acc | initial loss |",
             "|---|---|---|---|---|---|---|"]
    for r in results.values():
        if "error" in r:
            cells = [r["backend"], "failed", "", "", "", "", ""]
        else:
            cells = [r["backend"], f"{r['step_s'] * 1e3:.1f}", f"{r['images_per_s']:.1f}",
                     f"{r['peak_rss_mb']:.0f}", f"{r['final_accuracy']:.4f}",
                     f"{r['best_accuracy']:.4f}", f"{r['initial_loss']:.6f}"]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\nmax difference of the initial loss across backends: {gap:.3g}")
    console.print(table)
    console.print(f"max difference of the initial loss across backends: {gap:.3g}")
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    if len(ok) < len(names):
        fail("some backends failed; their logs are in " + str(out))


assert set(BACKEND_MODULES) == {"jax", "torch", "tensorflow"}
