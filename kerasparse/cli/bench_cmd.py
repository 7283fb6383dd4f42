"""``kerasparse bench``: time training steps and inference of a model on one backend."""

import json
from typing import Annotated, Optional

import typer

from kerasparse import presets
from kerasparse.cli._app import BackendOption, UsageError, app, console, fail, use_backend
from kerasparse.cli._choices import DataFormat, JitCompile, Precision


def _parse_keep_ratios(text):
    """"0.5,0.2,0.05" -> (0.5, 0.2, 0.05); a one-line error for anything else."""
    try:
        ratios = tuple(float(part) for part in text.split(","))
    except ValueError:
        ratios = ()
    if not ratios or not all(0.0 < r <= 1.0 for r in ratios):
        fail("--keep-ratios must be comma-separated numbers in (0, 1]. "
             f"Received: --keep-ratios={text}")
    twice = next((r for i, r in enumerate(ratios) if r in ratios[:i]), None)
    if twice is not None:
        fail(f"--keep-ratios lists {twice:g} twice. Received: --keep-ratios={text}")
    return ratios


# bench runs one of five benchmarks; each reads some of the options. Which reads which, in
# one table: an option given on the command line to a benchmark that does not read it is
# refused (as train refuses a controller key its controller does not read), so that no
# figure is recorded under a setting it was not measured with. "--backend", "--steps" and
# "--json" are read by all five.
_BENCHMARKS = {
    "step": "the training-step benchmark (the default)",
    "keep_ratios": "--keep-ratios",
    "sites": "--sites",
    "sparse_matvec": "--sparse-matvec",
    "input_pipeline": "--input-pipeline",
}
_TRAINING_STEP = ("step", "keep_ratios")
_READ_BY = {
    "model": _TRAINING_STEP,
    "batch_size": (*_TRAINING_STEP, "sites", "input_pipeline"),
    "warmup": (*_TRAINING_STEP, "sites", "sparse_matvec"),
    "keep_ratio": ("step", "sites"),
    "no_topk": ("step",),
    "inference": ("step",),
    "precision": _TRAINING_STEP,
    "data_format": _TRAINING_STEP,
    "jit_compile": _TRAINING_STEP,
    "steps_per_execution": _TRAINING_STEP,
    "devices": _TRAINING_STEP,
    "matvec_n": ("sparse_matvec",),
    "matvec_m_over_n": ("sparse_matvec",),
    "matvec_sparsity": ("sparse_matvec",),
    "threads": ("sparse_matvec",),
    "clock": ("sparse_matvec",),
    "run": ("sparse_matvec",),
    "dataset": ("input_pipeline",),
    "augment": ("input_pipeline",),
    "data_dir": ("input_pipeline",),
}


def _given(ctx, name):
    """Whether option ``name`` was given on the command line. (The source is compared by
    name: typer ships its own copy of click, whose enum is not click's.)"""
    return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"


def _check_options(ctx, values):
    """The benchmark chosen by the flags in ``values`` (a one-line error for two), after
    refusing any option from the command line that it does not read (``_READ_BY``).
    ``--no-inference`` is accepted everywhere: only the default benchmark times inference."""
    chosen = [name for name in ("keep_ratios", "sites", "sparse_matvec", "input_pipeline")
              if values[name] not in (None, False)]
    if len(chosen) > 1:
        flags = " and ".join(_BENCHMARKS[name] for name in chosen)
        fail(f"{flags} are different benchmarks: choose one. Received: {flags}")
    benchmark = chosen[0] if chosen else "step"
    for name, readers in _READ_BY.items():
        if not _given(ctx, name) or benchmark in readers or (name == "inference" and not values[name]):
            continue
        option = "--" + name.replace("_", "-")
        value = values[name]
        shown = getattr(value, "value", value)
        received = option if isinstance(value, bool) else f"{option}={shown}"
        names = [_BENCHMARKS[reader] for reader in readers]
        where = " and ".join(filter(None, (", ".join(names[:-1]), names[-1])))
        fail(f"{option} is read by {where} only; {_BENCHMARKS[benchmark]} would ignore it. "
             f"Received: {received}")
    if values["no_topk"] and _given(ctx, "keep_ratio"):
        fail("--keep-ratio is the sparse sites' r, and --no-topk has no sparse sites. "
             f"Received: --keep-ratio={values['keep_ratio']} --no-topk")
    return benchmark


@app.command()
def bench(
    ctx: typer.Context,
    backend: BackendOption = None,
    model: Annotated[str, typer.Option(help="Model name from the registry.")] = "wrn28-4",
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 32,
    steps: Annotated[int, typer.Option(help="Timed steps (median reported).")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up steps (compilation).")] = 2,
    keep_ratio: Annotated[float, typer.Option(help="Keep ratio r of the sparse sites.")] = 0.5,
    keep_ratios: Annotated[
        Optional[str],
        typer.Option(help="Instead: ReLU, r=1 and each of these r (e.g. 0.5,0.2,0.05), timed "
                          "interleaved in this process, with ratios to ReLU."),
    ] = None,
    no_topk: Annotated[
        bool, typer.Option("--no-topk", help="Replace the sparse sites by plain ReLU.")
    ] = False,
    inference: Annotated[bool, typer.Option(help="Also time inference.")] = True,
    precision: Annotated[Precision, typer.Option(help="Keras dtype policy.")] = Precision.float32,
    data_format: Annotated[
        DataFormat,
        typer.Option(help="Image layout inside the model (auto: channels_first on torch)."),
    ] = DataFormat.auto,
    jit_compile: Annotated[
        JitCompile,
        typer.Option(help="Compile the step: XLA, torch.compile on torch (auto: Keras' choice)."),
    ] = JitCompile.auto,
    steps_per_execution: Annotated[
        int, typer.Option(help="Steps per compiled call (jax, tensorflow; timed through fit).")
    ] = 1,
    devices: Annotated[int, typer.Option(help="Data-parallel devices (jax, tensorflow).")] = 1,
    sites: Annotated[
        bool,
        typer.Option(help="Instead: micro-benchmark one sparse site vs ReLU per WRN group."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    # --- what sparse activations buy at inference (kerasparse.sparse_inference) ---
    sparse_matvec: Annotated[
        bool, typer.Option("--sparse-matvec", help="Instead: dense vs sparse matrix-vector "
                           "products over Dent & Tanner's Table 3 grid, then dense vs sparse "
                           "inference of a DeepMLP (batch 1 and 64).")
    ] = False,
    matvec_n: Annotated[
        str, typer.Option(help="With --sparse-matvec: the vector sizes n.")
    ] = "100,300,3000",
    matvec_m_over_n: Annotated[
        str, typer.Option(help="With --sparse-matvec: the matrix shapes m/n.")
    ] = "0.5,1,2",
    matvec_sparsity: Annotated[
        str, typer.Option(help="With --sparse-matvec: the vector sparsities s.")
    ] = "0.5,0.8,0.9",
    threads: Annotated[
        int, typer.Option(help="With --sparse-matvec: CPU threads of the backend (0: its "
                               "default; 1 gives stable figures on a shared machine).")
    ] = 0,
    clock: Annotated[
        str, typer.Option(help="With --sparse-matvec: 'wall' time, or the process's 'cpu' "
                               "time (a shared, loaded CPU machine; with --threads 1).")
    ] = "wall",
    run: Annotated[
        Optional[str],
        typer.Option(help="With --sparse-matvec: a trained DeepMLP's run directory (its "
                          "model.keras, inputs from its dataset); default: mlp100x300 at "
                          "s = 0.85 at its EoC initialisation on Gaussian inputs of variance "
                          "q*. 'none' skips the network."),
    ] = None,
    # --- the input pipeline alone (kerasparse.data.bench_input) ---
    input_pipeline: Annotated[
        bool, typer.Option("--input-pipeline", help="Instead: time the input pipeline alone "
                           "(images/s, the old tf.data pipeline beside it).")
    ] = False,
    dataset: Annotated[str, typer.Option(help="Dataset for --input-pipeline.")] = "embedded",
    augment: Annotated[
        bool, typer.Option("--augment", help="With --input-pipeline: crop + flip.")
    ] = False,
    data_dir: Annotated[
        Optional[str], typer.Option(help="With --input-pipeline: the dataset's folder.")
    ] = None,
):
    """Time training steps (median, warm-up excluded) and inference of a model."""
    _check_options(ctx, locals())
    try:
        name = use_backend(backend)
    except UsageError as exc:
        fail(str(exc))
    for option, value in (("--batch-size", batch_size), ("--steps", steps),
                          ("--steps-per-execution", steps_per_execution)):
        if value < 1:
            fail(f"{option} must be a positive integer. Received: {option}={value}")
    if warmup < 0:
        fail(f"--warmup must be >= 0. Received: --warmup={warmup}")
    if not 0.0 < keep_ratio <= 1.0:
        fail(f"--keep-ratio must be in (0, 1]. Received: --keep-ratio={keep_ratio}")
    if input_pipeline:
        _input_pipeline(dataset, batch_size, augment, data_dir, steps, as_json)
        return
    if sparse_matvec:
        if threads < 0:
            fail(f"--threads must be >= 0. Received: --threads={threads}")
        if clock not in ("wall", "cpu"):
            fail(f"--clock must be wall or cpu. Received: --clock={clock}")
        _limit_threads(name, threads)
        _sparse_matvec(name, matvec_m_over_n, matvec_n, matvec_sparsity, run, steps, warmup,
                       as_json, threads, clock)
        return
    ratios = _parse_keep_ratios(keep_ratios) if keep_ratios is not None else None
    from kerasparse import distribution, step_options

    try:  # on a CPU-only machine, split the CPU (before the backend starts)
        distribution.prepare_devices(devices, name)
        step_options.check(name, steps_per_execution)
    except ValueError as exc:
        fail(str(exc))
    try:
        presets.check_name("model", model, presets.MODELS)
    except presets.UnknownName as exc:
        fail(str(exc))

    from kerasparse import bench as ks_bench

    if sites:
        rows = ks_bench.bench_topk_sites(batch_size, steps, warmup, keep_ratios=(keep_ratio, 1.0))
        if as_json:
            print(json.dumps({"backend": name, "batch_size": batch_size, "sites": rows}))
            return
        for row in rows:
            console.print(
                f"{row['site']} {tuple(row['shape'])} {row['config']:>12}: "
                f"{row['ms']:8.2f} ms  ({row['ratio_to_relu']:.2f}x ReLU)"
            )
        return
    options = dict(
        batch_size=batch_size, steps=steps, warmup=warmup, data_format=data_format.value,
        precision=precision.value, jit_compile=jit_compile.value,
        steps_per_execution=steps_per_execution, devices=devices,
    )
    if ratios is not None:
        _bench_keep_ratios(ks_bench, model, ratios, options, as_json)
        return
    try:
        result = ks_bench.bench_model(
            model,
            batch_size=batch_size,
            steps=steps,
            warmup=warmup,
            keep_ratio=keep_ratio,
            topk=not no_topk,
            inference=inference,
            data_format=data_format.value,
            precision=precision.value,
            jit_compile=jit_compile.value,
            steps_per_execution=steps_per_execution,
            devices=devices,
        )
    except ValueError as exc:
        fail(str(exc).splitlines()[0])
    if as_json:
        print(json.dumps(result))
        return
    what = "ReLU" if no_topk else f"top-k r={keep_ratio:g}"
    console.print(
        f"{result['backend']} {model} ({what}, {result['data_format']}, {precision.value}), "
        f"batch {batch_size}: {result['step_s'] * 1e3:.1f} ms/step, "
        f"{result['images_per_s']:.1f} images/s, peak RSS {result['peak_rss_mb']:.0f} MiB"
    )
    if inference:
        console.print(
            f"inference: {result['inference_s'] * 1e3:.1f} ms/batch, "
            f"{result['inference_images_per_s']:.1f} images/s"
        )


def _input_pipeline(dataset, batch_size, augment, data_dir, steps, as_json):
    """``--input-pipeline``: kerasparse.data.bench_input (``--steps`` x 40 batches timed)."""
    from kerasparse.data import bench_input

    try:
        presets.check_name("dataset", dataset, presets.DATASETS)
    except presets.UnknownName as exc:
        fail(str(exc))
    try:
        result = bench_input.bench_input_pipeline(dataset, batch_size, augment,
                                                  batches=40 * steps, data_dir=data_dir)
    except (ValueError, ImportError) as exc:
        fail(str(exc).splitlines()[0])
    if as_json:
        print(json.dumps(result))
        return
    for line in bench_input.format_result(result):
        console.print(line, highlight=False, markup=False)


def _bench_keep_ratios(ks_bench, model, ratios, options, as_json):
    """``--keep-ratios``: one process, ReLU / r=1 / each r interleaved."""
    try:
        result = ks_bench.bench_keep_ratios(model, ratios, **options)
    except ValueError as exc:
        fail(str(exc).splitlines()[0])
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"{result['backend']} {model} ({result['data_format']}, {result['precision']}, "
        f"jit_compile={result['jit_compile']}), batch {result['batch_size']}, "
        f"load {result['load_average']}:"
    )
    for name, seconds in result["step_s"].items():
        ratio = result["ratio_to_relu"].get(name)
        console.print(
            f"  {name:>8}: {seconds * 1e3:8.1f} ms/step"
            + ("" if ratio is None else f"  ({ratio:.3f}x ReLU)")
        )


def _number_list(option, text, kind):
    """"0.5,1,2" -> (0.5, 1.0, 2.0) (kind int or float); a one-line error otherwise."""
    try:
        values = tuple(kind(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values:
        what = "integers" if kind is int else "numbers"
        fail(f"{option} must be comma-separated {what}. Received: {option}={text}")
    return values


def _limit_threads(backend, threads):
    """``--threads N``: the sweep's per-cell thread limits (OpenMP/MKL, TensorFlow's pools,
    XLA's Eigen pool) set before the backend starts, and torch's pool at run time."""
    import os
    import sys

    if not threads:
        return
    from kerasparse import sweep

    if "keras" not in sys.modules:
        os.environ.update(sweep.thread_env(threads, backend))
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)


def _sparse_matvec(backend, m_over_n, ns, sparsities, run, repeats, warmup, as_json,
                   threads=0, clock="wall"):
    """``--sparse-matvec``: Table 3 of Dent & Tanner 2026 on this backend, then a DeepMLP."""
    from kerasparse import rundir
    from kerasparse import sparse_inference as si

    grid = (_number_list("--matvec-m-over-n", m_over_n, float),
            _number_list("--matvec-n", ns, int),
            _number_list("--matvec-sparsity", sparsities, float))
    try:
        si.check_grid(*grid)
    except ValueError as exc:
        fail(str(exc))
    network = None
    if run != "none":
        try:
            model, x, what = _sparse_network(run)
        except (ValueError, OSError, rundir.RunDirError) as exc:
            fail(str(exc).splitlines()[0])
    if backend == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # retracing notices: one graph per matrix shape
    from kerasparse import bench as ks_bench

    machine = {**ks_bench.machine_state(), "threads": threads or None, "clock": clock}
    rows = si.bench_matvec(backend, *grid, repeats=repeats, warmup=warmup, clock=clock)
    if run != "none":
        network = {"model": what, "rows": si.bench_mlp(backend, model, x, repeats=repeats,
                                                       warmup=warmup, clock=clock)}
    if as_json:
        print(json.dumps({"backend": backend, **machine, "matvec": rows, "network": network}))
        return
    console.print(f"{backend}: dense vs sparse matrix-vector product (Dent & Tanner 2026, "
                  f"Table 3), {machine['date']}, load {machine['load_average']}, {clock} "
                  "time:",
                  highlight=False)
    for line in si.format_table3(rows, grid[2]):
        console.print(line, highlight=False, markup=False)
    if network is not None:
        console.print(f"{backend}: inference of {what}, dense vs sparse layer by layer:",
                      highlight=False, markup=False)
        for row in network["rows"]:
            console.print(
                f"  batch {row['batch']:>3}: dense {row['dense_ms']:8.3f} ms, sparse "
                f"{row['sparse_ms']:8.3f} ms, speedup {row['speedup']:.3f}; activations "
                f"{row['activation_sparsity']:.3f} zero, kernel rows skipped "
                f"{row['rows_skipped']:.3f}", highlight=False, markup=False)


def _sparse_network(run):
    """(model, inputs, description) of ``--run`` (or the default untrained mlp100x300)."""
    import os

    import keras
    import numpy as np

    from kerasparse import models

    if run is None:
        model = models.get_model("mlp100x300", sparsity=0.85)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 28, 28, 1)).astype("float32") * np.sqrt(model.q_star)
        return model, x, (f"mlp100x300 (s = 0.85, q* = {model.q_star:g}, EoC initialisation, "
                          "Gaussian inputs)")
    from kerasparse import data as ks_data
    from kerasparse import rundir
    from kerasparse.train import data_q_star

    path = os.path.join(run, "model.keras")
    if not os.path.isfile(path):
        raise ValueError(f"--run {run!r} has no model.keras (a completed kerasparse train "
                         "run of a DeepMLP is needed)")
    config = rundir.read_json_object(os.path.join(run, "config.json"))
    try:
        model = keras.saving.load_model(path)
    except Exception as exc:  # a damaged file: one line, not a traceback
        raise ValueError(f"{path} cannot be loaded ({type(exc).__name__}: {exc})") from None
    data = ks_data.load(config["dataset"], batch_size=64, data_dir=config.get("data_dir"),
                        files_dir=config.get("files_dir"), q_star=data_q_star(config),
                        seed=config.get("seed", 0))
    x, _ = data.sample(64)
    from kerasparse import sparse_inference

    sparse_inference.mlp_layers(model)  # a DeepMLP, or a one-line error before any timing
    return model, x, (f"{config.get('model')} of {run} (s = {config.get('sparsity')}, "
                      f"{config.get('dataset')} inputs)")
