"""``kerasparse train``: one training run (a preset plus command-line overrides)."""

import enum
import inspect
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from kerasparse import config as ks_config
from kerasparse.cli import _choices
from kerasparse.cli._app import BackendOption, UsageError, app, console, fail, use_backend


def _opt(help_text, *names):
    return typer.Option(*names, help=help_text, show_default=False)


# Config keys with no option of their own: `callbacks` is filled by the repeatable
# --callback MODULE:FACTORY (one per callback, not one comma-joined string); the tables of
# constructor arguments (model_args, controller_args) come from a preset's [model] /
# [controller] or --set model_args={...}.
FIELD_OPTIONS = tuple(k for k, f in ks_config.FIELDS.items()
                      if k != "callbacks" and f.type is not dict)


def _parameters():
    """The command's parameters: its own (backend, files, run directory) and one option per
    config key, generated from ``config.FIELDS`` (a key added there is an option here)."""
    own = {
        "backend": BackendOption,
        "config": Annotated[Optional[Path], _opt("Preset TOML file (configs/*.toml).", "--config")],
        "out": Annotated[Optional[Path], _opt("Run directory for results.", "--out")],
        "resume": Annotated[Optional[Path], _opt(
            "Continue the run in this directory (with --epochs N: extend it to N epochs).",
            "--resume")],
        "overwrite": Annotated[bool, _opt(
            "Replace an existing run directory (deletes its results).", "--overwrite")],
    }
    defaults = {"overwrite": False}
    params = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, annotation=a,
                                default=defaults.get(k))
              for k, a in own.items()]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation=_choices.option(k)) for k in FIELD_OPTIONS]
    params += [
        inspect.Parameter("callback", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            Optional[list[str]],
            typer.Option("--callback", metavar="MODULE:FACTORY", show_default=False,
                         help="Your own Keras callback: a class or function returning a "
                              "Callback (repeatable; see docs/callbacks.md).")]),
        inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            Optional[list[str]], _opt("Any config key: --set key=value (repeatable).", "--set")]),
        inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, _opt("No progress bar.", "--quiet", "-q")]),
    ]
    return params


def train(**given):
    """Train a model; results go to --out (history.csv, summary.json, plots, checkpoints)."""
    from kerasparse import rundir, step_options
    from kerasparse import train as ks_train  # NumPy only; Keras comes after use_backend

    # SIGINT / SIGTERM from here on stop the run cleanly (kerasparse.train.stop_on_signals).
    with ks_train.stop_on_signals():
        summary = _train(given, ks_config, rundir, step_options, ks_train)
    _print_summary(summary, str(given["resume"] or given["out"]))
    if summary["status"] == "diverged":
        raise typer.Exit(3)
    if summary["status"] == "interrupted":
        raise typer.Exit(128 + (ks_train.STOP.signum or 2))


# Typer reads the parameters from the signature: set it, then register the command.
train.__signature__ = inspect.Signature(_parameters())
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}
app.command()(train)


def _train(given, ks_config, rundir, step_options, ks_train):
    backend, config, out, resume = (given[k] for k in ("backend", "config", "out", "resume"))
    overwrite, set_, quiet = given["overwrite"], given["set_"], given["quiet"]
    try:
        if resume is not None:
            if overwrite:
                raise UsageError("--resume and --overwrite exclude each other (--resume keeps "
                                 "the run's results; --overwrite would delete them)")
            extra = [k for k in FIELD_OPTIONS if given[k] is not None and k != "epochs"]
            extra += ["--config"] if config else []
            extra += ["--callback"] if given["callback"] else []
            if extra or set_ or out is not None:
                raise UsageError(
                    "--resume continues a run with its saved config (only --epochs N may "
                    "extend it); drop the other options "
                    f"({', '.join(extra + (['--set'] if set_ else []) + (['--out'] if out else []))})"
                )
            saved_config = _saved_config(resume)
            saved = saved_config.get("backend")
            if backend is not None and saved is not None and backend.value != saved:
                raise UsageError(
                    f"{resume} was trained on {saved!r}; resume it on the same backend "
                    f"(drop --backend or pass --backend {saved})"
                )
            name = use_backend(backend or saved)
            _prepare_devices(saved_config, name)
            if given["epochs"] is not None:  # extend the run (a finished one included)
                ks_train.extend_run(str(resume), given["epochs"])
            return ks_train.run(str(resume), resume=True, verbose=0 if quiet else 1)
        else:
            if out is None:
                raise UsageError("--out DIR is required (where the results go)")
            overrides = {}
            for key, value in (ks_config.parse_assignment(s) for s in set_ or []):
                overrides[key] = value
            for key in FIELD_OPTIONS:
                value = given[key]
                if value is not None:
                    overrides[key] = value.value if isinstance(value, enum.Enum) else value
            if given["callback"]:
                overrides["callbacks"] = ",".join(given["callback"])
            resolved = ks_config.resolve(config, overrides)
            name = use_backend(backend)  # before anything imports keras
            _prepare_devices(resolved, name)
            _check_step_options(resolved, name)
            if ks_train.STOP.signum is not None:  # a signal while the backend started
                raise ks_train.Interrupted("interrupted during start-up; nothing was written",
                                           ks_train.STOP.signum)
            return ks_train.run(
                str(out), resolved, name, overwrite=overwrite, verbose=0 if quiet else 1
            )
    except (ks_config.ConfigError, rundir.RunDirError, UsageError) as exc:
        fail(str(exc))
    except (step_options.CompileFailed, ks_train.CheckpointWriteError) as exc:
        fail(str(exc), code=1)
    except ks_train.Interrupted as exc:
        fail(str(exc), code=128 + exc.signum)
    except ImportError as exc:  # a broken install (a backend, a compiled extension)
        fail(f"cannot import {exc.name or 'a module'} ({exc}); the installation is broken: "
             "reinstall it (pip install --force-reinstall 'kerasparse[<backend>]')", code=1)
    except KeyboardInterrupt:  # a second SIGINT / SIGTERM: stop at once
        where = resume or out
        fail(f"aborted by a second signal; {where} keeps its last finished epoch's checkpoint "
             f"(resume with: kerasparse train --resume {where})", code=130)


def _prepare_devices(config, backend):
    """--device KIND (hide the GPUs, or require one) and --devices N (check it for the
    backend and, on a CPU-only machine, make N devices), before the backend starts
    (kerasparse.devices, kerasparse.distribution)."""
    from kerasparse import devices, distribution

    try:
        distribution.prepare_devices(config.get("devices", 1), backend)  # before jax starts
        devices.prepare(config.get("device", "auto"), backend)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_step_options(config, backend):
    """Step options Keras cannot run on this backend fail before anything is written."""
    from kerasparse import step_options

    try:
        step_options.check(backend, config["steps_per_execution"])
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _saved_config(run_dir):
    """The run's saved config.json ({} if there is none: train.run then says what is wrong)."""
    path = os.path.join(run_dir, "config.json")
    if os.path.isfile(path):
        from kerasparse import rundir

        return rundir.read_json_object(path)
    return {}


def _print_summary(summary, out):
    from rich.table import Table

    table = Table(title=f"{out} ({summary['status']})", show_header=False)
    best = summary["best_test_accuracy"]
    rows = [
        ("backend", summary["backend"]),
        ("device", summary.get("device") or "-"),
        ("epochs", f"{summary['epochs_done']} / {summary['epochs']}"),
        ("best test accuracy", "-" if best is None else f"{best:.4f} (epoch {summary['best_epoch']})"),
        ("final loss", _fmt(summary["final"].get("loss"))),
        ("final keep ratio", _fmt(summary["final"].get("keep_ratio"))),
        # The controller's resets of r to max_keep_ratio (history.csv's "resets"; "-": none).
        ("keep-ratio resets", _count(summary["final"].get("resets"))),
        ("final nz", _fmt(summary["final"].get("nz"))),
        ("measured sparsity", _fmt((summary.get("measured_sparsity") or {}).get("overall"))),
        ("wall time", f"{summary['wall_time_s']:.1f} s"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)


def _count(value):
    return "-" if value is None or value == "" else str(int(value))


def _fmt(value):
    return "-" if value is None or value == "" else f"{value:.4g}"
