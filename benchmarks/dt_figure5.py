"""A reduced Figure 5 of Dent & Tanner 2026 on real MNIST, trained as one pack.

Figure 5: mean training loss (a) and validation accuracy (b) against step for the 100 x 300
CReLU DNN at s = 0.85, V'(q*) = 0.7, q* in {1, 2, 3}, five seeds each, mean and standard
deviation over seeds. Here the 15 cells are one ``kerasparse.packed.train_pack`` program on
the CPU, for as many steps as fit in ``--minutes``: "epochs" of ``--window`` steps each (each
starts its own seeded shuffle, so each window is a uniformly random stretch of the data), so
``history.csv``'s ``loss`` is the mean training loss over each window. After ``--minutes`` the
script interrupts the pack as Ctrl-C would (the cut window is dropped; the cells can be
resumed later with ``train_pack(dirs, resume=True)`` to extend the curves).

    KERAS_BACKEND=jax python benchmarks/dt_figure5.py --files-dir ../shared/data/mnist \
        --minutes 20 --out runs/fig5 --png docs/figure5-packed.png

``--replot`` redraws the PNG and the table from ``--out`` without training.
"""

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PRESET = os.path.join(ROOT, "configs", "dent-tanner2026-dnn-mnist-q3.toml")


def cell_dir(out, q, seed):
    return os.path.join(out, f"q_star={q:g}_seed={seed}")


def read_history(path):
    from kerasparse import report

    return report.load_run(path)[1]  # rows of floats


def collect(out, q_stars, seeds):
    """{q*: [(history rows of each seed)]}, cut to the windows every cell has."""
    runs = {q: [read_history(cell_dir(out, q, s)) for s in seeds] for q in q_stars}
    n = min(len(h) for hs in runs.values() for h in hs)
    return {q: [h[:n] for h in hs] for q, hs in runs.items()}, n


def mean_sd(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def plot(runs, window, png, title):
    """The figure, drawn by kerasparse.report.plot_seed_curves (as ``kerasparse report
    SWEEP`` draws it): mean +- sd bands over seeds per q*."""
    from kerasparse import report

    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    report.plot_seed_curves(
        {f"q* = {q:g}": hs for q, hs in runs.items()}, png, title=title, steps_per_epoch=window,
        accuracy_key="test_accuracy", accuracy_label="test accuracy (first 1,000 test images)",
        loss_label=f"training loss (mean over each {window}-step window)")


def table(runs, window):
    """Per q*: mean +- sd over seeds of the first and last window's loss and accuracy; and per
    pair of q*, in how many windows the mean loss of the larger q* is lower."""
    out = {"windows": len(next(iter(runs.values()))[0]), "window_steps": window, "q_star": {}}
    for q, hs in runs.items():
        first = mean_sd([float(h[0]["loss"]) for h in hs])
        last = mean_sd([float(h[-1]["loss"]) for h in hs])
        acc = mean_sd([float(h[-1]["test_accuracy"]) for h in hs])
        out["q_star"][f"{q:g}"] = {
            "first_window_loss": [round(v, 4) for v in first],
            "last_window_loss": [round(v, 4) for v in last],
            "last_test_accuracy": [round(v, 4) for v in acc],
            "mean_loss_per_window": [
                round(statistics.fmean(float(h[i]["loss"]) for h in hs), 4)
                for i in range(len(hs[0]))
            ],
        }
    qs = sorted(runs)
    lower = {}
    for a in qs:
        for b in qs:
            if b > a:
                ma = out["q_star"][f"{a:g}"]["mean_loss_per_window"]
                mb = out["q_star"][f"{b:g}"]["mean_loss_per_window"]
                lower[f"q*={b:g} below q*={a:g}"] = f"{sum(y < x for x, y in zip(ma, mb))}/{len(ma)}"
    out["windows_where_larger_q_star_has_lower_mean_loss"] = lower
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files-dir", required=False)
    p.add_argument("--out", default="runs/fig5")
    p.add_argument("--png", default=os.path.join(ROOT, "docs", "figure5-packed.png"))
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--window", type=int, default=50, help="steps per logged window")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--sparsity", type=float, default=0.85)
    p.add_argument("--v-prime", type=float, default=0.7)
    p.add_argument("--q-stars", default="1,2,3")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-4, help="the paper's DNN learning rate")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--test-examples", type=int, default=1000)
    p.add_argument("--replot", action="store_true")
    args = p.parse_args(argv)
    q_stars = [float(q) for q in args.q_stars.split(",")]
    seeds = [3407 + i for i in range(args.seeds)]
    dirs = [cell_dir(args.out, q, s) for q in q_stars for s in seeds]

    sys.path.insert(0, ROOT)
    if not args.replot:
        from kerasparse.config import resolve
        from kerasparse.packed import train_pack

        configs = [
            resolve(PRESET, {
                "files_dir": os.path.abspath(args.files_dir), "depth": args.depth,
                "width": args.width, "sparsity": args.sparsity, "v_prime": args.v_prime,
                "q_star": q, "seed": s, "lr": args.lr, "batch_size": args.batch_size,
                "steps_per_epoch": args.window, "epochs": 100000, "validation_split": 0.0,
                "test_examples": args.test_examples, "monitor_batch": 0,
                "checkpoint_every": 10,
            })
            for q in q_stars for s in seeds
        ]
        # After --minutes, stop as Ctrl-C does: the pack finishes its batch, drops the cut
        # window and writes every cell's summary (status "interrupted", resumable).
        timer = threading.Timer(args.minutes * 60, os.kill, (os.getpid(), signal.SIGINT))
        timer.daemon = True
        start = time.time()
        timer.start()
        resume = all(os.path.exists(os.path.join(d, "config.json")) for d in dirs)
        if resume:
            train_pack(dirs, resume=True)
        else:
            train_pack(dirs, configs)
        timer.cancel()
        print(f"trained for {(time.time() - start) / 60:.1f} min")

    runs, n = collect(args.out, q_stars, seeds)
    with open(os.path.join(dirs[0], "config.json")) as f:
        config = json.load(f)
    title = (f"Dent & Tanner Fig. 5, reduced: {config['depth']} x {config['width']} CReLU MLP, "
             f"s = {args.sparsity}, V'(q*) = {args.v_prime}, MNIST, SGD lr {config['lr']:g}, "
             f"batch {config['batch_size']}, {len(seeds)} seeds per q* (mean +- sd), "
             f"one pack of {len(dirs)} on CPU ({config['backend']})")
    plot(runs, args.window, args.png, title)
    result = table(runs, args.window)
    with open(os.path.join(args.out, "figure5.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
