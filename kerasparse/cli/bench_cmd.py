"""``kerasparse bench``: time training steps and inference of a model on one backend."""

import enum
import json
from typing import Annotated, Optional

import typer

from kerasparse.cli._app import BackendOption, UsageError, app, console, fail, suggest, use_backend


class Precision(str, enum.Enum):
    float32 = "float32"
    mixed_bfloat16 = "mixed_bfloat16"


class DataFormat(str, enum.Enum):
    auto = "auto"
    channels_last = "channels_last"
    channels_first = "channels_first"


@app.command()
def bench(
    backend: BackendOption = None,
    model: Annotated[str, typer.Option(help="Model name from the registry.")] = "wrn28-4",
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 32,
    steps: Annotated[int, typer.Option(help="Timed steps (median reported).")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up steps (compilation).")] = 2,
    keep_ratio: Annotated[float, typer.Option(help="Keep ratio r of the sparse sites.")] = 0.5,
    no_topk: Annotated[
        bool, typer.Option("--no-topk", help="Replace the sparse sites by plain ReLU.")
    ] = False,
    inference: Annotated[bool, typer.Option(help="Also time inference.")] = True,
    precision: Annotated[Precision, typer.Option(help="Keras dtype policy.")] = Precision.float32,
    data_format: Annotated[
        DataFormat,
        typer.Option(help="Image layout inside the model (auto: channels_first on torch)."),
    ] = DataFormat.auto,
    devices: Annotated[int, typer.Option(help="Data-parallel devices (jax, tensorflow).")] = 1,
    sites: Annotated[
        bool,
        typer.Option(help="Instead: micro-benchmark one sparse site vs ReLU per WRN group."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
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
    try:
        name = use_backend(backend)
    except UsageError as exc:
        fail(str(exc))
    for option, value in (("--batch-size", batch_size), ("--steps", steps)):
        if value < 1:
            fail(f"{option} must be a positive integer. Received: {option}={value}")
    if warmup < 0:
        fail(f"--warmup must be >= 0. Received: --warmup={warmup}")
    if not 0.0 < keep_ratio <= 1.0:
        fail(f"--keep-ratio must be in (0, 1]. Received: --keep-ratio={keep_ratio}")
    if input_pipeline:
        _input_pipeline(dataset, batch_size, augment, data_dir, steps, as_json)
        return
    from kerasparse import distribution

    try:  # on a CPU-only machine, split the CPU (before the backend starts)
        distribution.prepare_devices(devices, name)
    except ValueError as exc:
        fail(str(exc))
    from kerasparse.models import MODELS

    if model not in MODELS:
        fail(f"unknown model {model!r}; allowed: {', '.join(MODELS)}.{suggest(model, MODELS)}")

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
    from kerasparse.data import DATASETS, bench_input

    if dataset not in DATASETS:
        fail(f"unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}."
             f"{suggest(dataset, DATASETS)}")
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
