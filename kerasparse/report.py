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
    resets = reset_epochs(history)
    for i, epoch in enumerate(resets):  # Wang 2026 Figs. 1-3 mark each controller reset
        for axis in (ax, ax_loss):
            axis.axvline(epoch, color="tab:purple", ls="--", lw=0.8, alpha=0.7,
                         label="controller reset" if i == 0 and axis is ax else None)
    best = None if summary is None else summary.get("best_test_accuracy")
    if isinstance(best, int | float) and not isinstance(best, bool):
        ax.axhline(best, color="tab:red", ls=":", lw=1,
                   label=f"best test acc {best:.4f} (epoch {summary.get('best_epoch')})")
        ax.annotate(f"best {best:.4f}", (epochs[0], best), xytext=(2, 2),
                    textcoords="offset points", fontsize=8, color="tab:red")
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
    _save(fig, out)
    return out


def reset_epochs(history):
    """The epochs at whose end a keep-ratio controller reset r (the ``resets`` count went
    up, or ``keep_ratio_reset`` is set)."""
    epochs, before = [], 0.0
    for row in history:
        count, flag = row.get("resets"), row.get("keep_ratio_reset")
        if (isinstance(count, float) and count > before) or (isinstance(flag, float) and flag):
            epochs.append(row["epoch"])
        if isinstance(count, float):
            before = count
    return epochs


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


# --- across seeds and runs: Dent & Tanner 2026 Figs. 5/6, and several runs in one figure ------


def seed_curves(histories, key, steps_per_epoch=None):
    """Mean and (sample) standard deviation over seeds of column ``key`` of each history,
    epoch by epoch, over the epochs every seed has a finite value for: ``(x, mean, sd)``,
    x in steps (epoch x ``steps_per_epoch``) or epochs. One seed: sd 0."""
    n = min((len(h) for h in histories), default=0)
    xs, means, sds = [], [], []
    for i in range(n):
        values = [h[i].get(key) for h in histories]
        if not all(isinstance(v, float) and math.isfinite(v) for v in values):
            continue
        xs.append(histories[0][i]["epoch"] * (steps_per_epoch or 1))
        means.append(statistics.fmean(values))
        sds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return xs, means, sds


def plot_seed_curves(series, path, *, title, steps_per_epoch=None, accuracy_key=None,
                     loss_label="mean training loss", accuracy_label=None):
    """Dent & Tanner 2026 Figs. 5/6: (a) mean training loss and (b) validation accuracy
    against step, one line per ``series`` label (e.g. ``"q* = 3"``: the histories of its
    seeds), with a band of +- one standard deviation across seeds. ``accuracy_key``:
    ``val_accuracy`` where the runs have it, else ``test_accuracy``. Returns
    ``{label: {"loss": (x, mean, sd), "accuracy": (x, mean, sd)}}`` as drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if accuracy_key is None:
        has_val = any(isinstance(row.get("val_accuracy"), float)
                      for hs in series.values() for h in hs for row in h)
        accuracy_key = "val_accuracy" if has_val else "test_accuracy"
    accuracy_label = accuracy_label or accuracy_key.replace("_", " ")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = {}
    for i, (label, histories) in enumerate(series.items()):
        colour = f"C{i % 10}"
        drawn[label] = {}
        for ax, key, name in ((ax_loss, "loss", "loss"), (ax_acc, accuracy_key, "accuracy")):
            x, mean, sd = seed_curves(histories, key, steps_per_epoch)
            drawn[label][name] = (x, mean, sd)
            if not x:
                continue
            ax.plot(x, mean, color=colour, lw=1.4, marker="o" if len(x) < 30 else None,
                    ms=2.5, label=f"{label} ({len(histories)} seed{'s' * (len(histories) > 1)})")
            ax.fill_between(x, [m - d for m, d in zip(mean, sd)],
                            [m + d for m, d in zip(mean, sd)], color=colour, alpha=0.2, lw=0)
    x_label = "step" if steps_per_epoch else "epoch"
    ax_loss.set(xlabel=x_label, ylabel=loss_label, title="(a) training loss")
    ax_acc.set(xlabel=x_label, ylabel=accuracy_label,
               title="(b) accuracy (mean +- sd over seeds)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    import textwrap

    fig.suptitle(textwrap.fill(title, 110), fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return drawn


def _save(fig, path):
    import matplotlib.pyplot as plt

    try:
        with rundir.atomic_write(path, "wb") as f:
            fig.savefig(f, dpi=110, format="png")
    finally:
        plt.close(fig)


SWEEP_PLAN = "sweep-plan.json"  # kerasparse.sweep.PLAN_FILE (not imported: keep this light)


def is_sweep(path):
    return os.path.isfile(os.path.join(path, SWEEP_PLAN))


def sweep_cells(path):
    """The run directories of a sweep folder that exist, in the plan's order."""
    plan = rundir.read_json_object(os.path.join(path, SWEEP_PLAN))
    names = plan.get("cells") or []
    return [os.path.join(path, n) for n in names
            if os.path.isfile(os.path.join(path, n, "config.json"))]


def _label(point):
    names = {"q_star": "q*", "v_prime": "V'", "sparsity": "s"}
    return ", ".join(f"{names.get(k, k)} = {v:g}" if isinstance(v, int | float) else
                     f"{names.get(k, k)} = {v}" for k, v in point.items())


def sweep_series(path):
    """A sweep folder's histories grouped for :func:`plot_sweep`: ``{figure label: {series
    label: [histories of its seeds]}}`` and the steps per epoch (None if unknown). With
    ``q_star`` in the grid and other grid keys too, one figure per value of the other keys
    with a line per q* (Dent & Tanner's layout); else one figure, a line per grid point."""
    plan = rundir.read_json_object(os.path.join(path, SWEEP_PLAN))
    keys = list(plan.get("grid") or {})
    groups, steps = {}, None
    for cell in sweep_cells(path):
        config, history, summary = load_run(cell)
        if not history:
            continue
        if steps is None and summary and isinstance(summary.get("steps_per_epoch"), int):
            steps = summary["steps_per_epoch"]
        point = {k: config.get(k) for k in keys}
        if "q_star" in point and len(point) > 1:
            figure_key = _label({k: v for k, v in point.items() if k != "q_star"})
            series_key = _label({"q_star": point["q_star"]})
        else:
            figure_key, series_key = "", _label(point) or "runs"
        groups.setdefault(figure_key, {}).setdefault(series_key, []).append(history)
    return {k: dict(sorted(v.items())) for k, v in groups.items()}, steps


def plot_sweep(path, filename="figure.png"):
    """Dent & Tanner Figs. 5/6 for a sweep folder (:func:`sweep_series`): ``figure.png``, or
    ``figure-<values>.png`` per value of the grid keys other than q*. Returns ``{path
    written: what plot_seed_curves drew}``."""
    groups, steps = sweep_series(path)
    cells = sweep_cells(path)
    config = load_run(cells[0])[0] if cells else {}
    written = {}
    for figure_key, series in groups.items():
        name = filename if len(groups) == 1 else (
            f"{os.path.splitext(filename)[0]}-{_safe(figure_key)}.png")
        epochs = min(len(h) for hs in series.values() for h in hs)
        title = (f"{config.get('model')} ({config.get('activation') or 'relu'}) on "
                 f"{config.get('dataset')}" + (f", {figure_key}" if figure_key else "")
                 + f": mean +- sd over seeds, {epochs} epochs")
        out = os.path.join(path, name)
        written[out] = plot_seed_curves(series, out, title=title, steps_per_epoch=steps)
    return written


def _safe(text):
    return "".join(c if c.isalnum() or c in "=.-" else "_" for c in text.replace(" ", ""))


def plot_runs(paths, out):
    """Several runs in one figure: test (or validation) accuracy and training loss against
    epoch, one line per run, each labelled by its directory name; resets marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, path in enumerate(paths):
        _, history, _ = load_run(path)
        colour = f"C{i % 10}"
        label = os.path.basename(os.path.normpath(path))
        epochs = _series(history, "epoch")
        acc_key = "test_accuracy" if any(v is not None for v in _series(history,
                                                                         "test_accuracy")) \
            else "val_accuracy"
        ax_acc.plot(epochs, _series(history, acc_key), color=colour, lw=1.3, label=label)
        loss = [v if isinstance(v, float) and math.isfinite(v) and v > 0 else None
                for v in _series(history, "loss")]
        if any(v is not None for v in loss):
            ax_loss.plot(epochs, loss, color=colour, lw=1.2, label=label)
        for epoch in reset_epochs(history):
            ax_acc.axvline(epoch, color=colour, ls="--", lw=0.6, alpha=0.5)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (dashed: controller resets)",
               title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    if ax_loss.lines:
        ax_loss.set_yscale("log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{len(paths)} runs", fontsize=10)
    fig.tight_layout()
    _save(fig, out)
    return out
