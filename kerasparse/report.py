"""Reading run directories back: plots in the style of Wang 2026 Figs. 1-3, comparison tables."""

import csv
import math
import os
import statistics

from kerasparse import rundir


def load_run(path):
    """(config, history rows, summary or None) of a run directory."""
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise rundir.RunDirError(f"{path!r} is not a kerasparse run directory (no config.json)")
    config = rundir.read_json_object(config_path)
    history = []
    history_path = os.path.join(path, "history.csv")
    if os.path.isfile(history_path):
        history = _read_history(history_path)
    summary_path = os.path.join(path, "summary.json")
    summary = rundir.read_json_object(summary_path) if os.path.isfile(summary_path) else None
    return config, history, summary


def _read_history(path):
    """history.csv as rows of numbers (RunDirError naming the file if it is damaged)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError:
        raise rundir.RunDirError(f"{path} is damaged: not UTF-8 text (expected the CSV "
                                 "table kerasparse writes)") from None
    except csv.Error as exc:
        raise rundir.RunDirError(f"{path} is damaged ({exc})") from None
    except OSError as exc:
        raise rundir.RunDirError(f"{path} cannot be read ({exc.strerror or exc})") from None
    for line, row in enumerate(rows, start=2):
        if None in row or not isinstance(_num(row.get("epoch")), float):
            raise rundir.RunDirError(
                f"{path} is damaged: line {line} is not a row of the table (each row starts "
                "with its epoch number and has one value per column)")
    return [{k: _num(v) for k, v in row.items()} for row in rows]


def _num(text):
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _series(history, key):
    """The column ``key`` as floats (None where missing or not a number)."""
    return [v if isinstance(v := row.get(key), float) else None for row in history]


def plot_run(path, filename="training.png"):
    """Accuracy (train, test) and nz against epoch with the keep ratio shaded; loss below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config, history, summary = load_run(path)
    if not history:
        return None
    epochs = _series(history, "epoch")
    fig, (ax, ax_loss) = plt.subplots(
        2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    keep = _series(history, "keep_ratio")
    if any(v is not None for v in keep):
        values = [1.0 if v is None else v for v in keep]
        ax.fill_between(epochs, 0, values, step="mid", color="tab:gray", alpha=0.18,
                        label="keep ratio r")
    for key, label, style in (
        ("accuracy", "train acc", "tab:blue"),
        ("test_accuracy", "test acc", "tab:red"),
        ("val_accuracy", "val acc", "tab:orange"),
        ("nz", "nz (actual non-zero fraction)", "tab:green"),
    ):
        values = _series(history, key)
        if any(v is not None for v in values):
            ax.plot(epochs, values, color=style, label=label, lw=1.4)
    best = None if summary is None else summary.get("best_test_accuracy")
    if isinstance(best, int | float) and not isinstance(best, bool):
        ax.axhline(best, color="tab:red", ls=":", lw=1)
        ax.set_title(
            f"{config.get('model')} on {config.get('dataset')}, controller "
            f"{config.get('controller')} ({config.get('backend')}): best test acc {best:.4f} "
            f"at epoch {summary.get('best_epoch')}",
            fontsize=10,
        )
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy / nz / r")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    for key, label, style in (("loss", "train loss", "tab:blue"),
                              ("test_loss", "test loss", "tab:red")):
        values = [v if isinstance(v, float) and math.isfinite(v) and v > 0 else None
                  for v in _series(history, key)]
        if any(v is not None for v in values):
            ax_loss.plot(epochs, values, color=style, label=label, lw=1.2)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    fig.tight_layout()
    out = os.path.join(path, filename)
    try:
        with rundir.atomic_write(out, "wb") as f:
            fig.savefig(f, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out


def run_row(path):
    """One comparison-table row for a run directory."""
    config, history, summary = load_run(path)
    last = history[-1] if history else {}
    summary = summary or {}
    return {
        "run": path,
        "status": summary.get("status", "running" if history else "empty"),
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        "controller": config.get("controller"),
        "backend": config.get("backend"),
        "seed": config.get("seed"),
        "epochs": f"{len(history)}/{config.get('epochs')}",
        "best_test_accuracy": summary.get("best_test_accuracy"),
        "best_epoch": summary.get("best_epoch"),
        "final_test_accuracy": last.get("test_accuracy"),
        "final_loss": last.get("loss"),
        "final_nz": last.get("nz"),
        "measured_sparsity": _measured_sparsity(summary, last),
        "resets": last.get("resets"),
        "wall_time_s": summary.get("wall_time_s"),
    }


def _measured_sparsity(summary, last):
    """The fraction of zero hidden activations: summary.json's ``measured_sparsity`` (written
    by kerasparse train), else 1 - the last history row's ``nz`` (a running run, or one
    written before that field existed); None if the run measured nothing."""
    measured = summary.get("measured_sparsity")
    if isinstance(measured, dict) and isinstance(measured.get("overall"), int | float):
        return float(measured["overall"])
    nz = last.get("nz")
    return 1.0 - nz if isinstance(nz, float) else None


def median(values):
    values = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    return statistics.median(values) if values else None
