"""The training application behind ``kerasparse train``: one run in one directory.

What a run directory holds (see docs/training.md):

- ``config.json``   the resolved configuration (written first; ``--resume`` reads it back)
- ``history.csv``   one row per finished epoch (loss, accuracy, test/val metrics, lr,
                    keep_ratio, keep_ratio_reset, resets, nz, nz/<site>, time)
- ``summary.json``  status, best test accuracy and its epoch, final metrics, wall time,
                    backend, versions, seed, git commit
- ``checkpoints/``  ``epoch-NNNN.weights.h5`` (every model and optimizer variable, Keras'
                    weights format) and ``epoch-NNNN.json`` (controller state, history, RNG
                    state, the variables' manifest), made current by an atomic rewrite of
                    ``latest.json`` (:mod:`kerasparse.checkpoint`)
- ``best.weights.h5`` the model's weights at its best epoch (validation accuracy, else test)
- ``tensorboard/``  TensorBoard event files (``--tensorboard``)
- ``model.keras``   the final model; ``training.png`` the plots

Exact resume: the data order of epoch e is a pure function of (seed, e) (a stateless shuffle,
:meth:`kerasparse.data.DatasetBundle.train_epochs`),
weights and optimizer slots (with the step counter, hence the cosine schedule position) come
back bit for bit, and the controller state is restored, so a resumed run replays the
uninterrupted one. A run killed mid-epoch restarts that epoch from its beginning.

Read top to bottom: the building blocks (:func:`build_data`, :func:`build_model`,
:func:`compile_model` with :func:`build_optimizer`, :func:`build_controller`), then the run
(:func:`run` -> ``_run`` -> ``_train``: config.json, compile, restore, callbacks, fit,
summarise). The runner's callbacks and their order: :mod:`kerasparse.run_callbacks`; the files
of the run directory: :class:`kerasparse.run_record.RunRecord`; Ctrl-C / SIGTERM:
:mod:`kerasparse.interrupts`.

Keras is imported lazily: call ``kerasparse.cli._app.use_backend`` (or set KERAS_BACKEND)
before :func:`run`.
"""

import contextlib
import os

from kerasparse import interrupts, rundir, step_options
from kerasparse.config import SMOOTHING, ConfigError, resolve

# What callers (the CLI, sweep, tests) catch and use, where they have always found it.
from kerasparse.interrupts import STOP, Interrupted, stop_on_signals  # noqa: F401
from kerasparse.run_record import CheckpointWriteError, RunRecord  # noqa: F401

TENSORBOARD = "tensorboard"  # the event files' folder in a run directory (--tensorboard)

# ---------------------------------------------------------------------------------------------
# Building blocks


def build_data(config):
    """The :class:`kerasparse.data.DatasetBundle` of ``config`` (its dataset, batch size,
    split, q* scaling, seed and example cap), as every run loads it."""
    from kerasparse import data as ks_data

    return ks_data.load(
        config["dataset"],
        batch_size=config["batch_size"],
        data_dir=config["data_dir"],
        files_dir=config["files_dir"],
        augment=config["augment"],
        validation_split=config["validation_split"],
        q_star=data_q_star(config),
        seed=config["seed"],
        max_train_examples=config["train_examples"],
        split=config["split"],
    )


# The config keys that are model arguments (``width`` is DeepCNN's ``channels``).
MODEL_KEYS = ("activation", "norm", "sparsity", "q_star", "v_prime", "depth", "width")


def resolved_config(config):
    """``config`` with the defaults a run actually uses written in (what config.json and
    summary.json record): the model's ``activation``, ``norm``, ``depth``, ``width`` and, for
    the edge-of-chaos nets, ``sparsity``, ``q_star``, ``v_prime`` (its registry preset, else its
    builder's default), and a feedback controller's ``smoothing``. A key the model does not
    take (``norm`` of an MLP) or the controller does not use stays None. Building from the
    result gives the same model and controller as building from ``config``."""
    from kerasparse import models

    out = dict(config)
    spec = models.model_spec(config["model"])
    arguments = spec.arguments(**(config.get("model_args") or {}))
    for key in MODEL_KEYS:
        name = "channels" if key == "width" and spec.builder == "DeepCNN" else key
        if out[key] is None and arguments.get(name) is not None:
            if key in ("sparsity", "q_star", "v_prime") and not spec.takes_q_star:
                continue
            out[key] = arguments[name]
    if out["smoothing"] is None and out["controller"] in SMOOTHING:
        out["smoothing"] = SMOOTHING[out["controller"]]
    return out


def build_model(config, data):
    import keras

    from kerasparse import models

    # The [model] table's arguments (config.resolve moved those with a key of their own to
    # that key), then the config's keys, then what the data sets.
    overrides = dict(config.get("model_args") or {})
    overrides.update(num_classes=data.num_classes, input_shape=tuple(data.input_shape))
    for key in MODEL_KEYS:
        if config[key] is not None:
            overrides[key] = config[key]
    if "width" in overrides and models.model_spec(config["model"]).builder == "DeepCNN":
        overrides["channels"] = overrides.pop("width")  # DeepCNN calls its width channels
    if not config["topk"]:
        overrides["topk"] = False
    backend = keras.backend.backend()
    layout = step_options.data_format(config["data_format"], backend)
    if models.model_spec(config["model"]).builder == "WideResNet":
        step_options.check_layout(backend, layout, config["jit_compile"])
        overrides["data_format"] = layout
    elif config["data_format"] == "channels_first":
        raise ValueError(
            f"data_format applies to the WRN models only; {config['model']!r} runs "
            "channels_last. Received: data_format='channels_first'"
        )
    return models.get_model(config["model"], **overrides)



def compile_model(model, config=None, steps_per_epoch=None, *, optimizer=None, loss=None,
                  metrics=("accuracy",), jit_compile=None, steps_per_execution=None):
    """``model.compile`` as every kerasparse training does it (``kerasparse train`` and
    ``compare``, ``bench``, packed runs, the apps): cross-entropy from logits and accuracy
    unless ``loss`` / ``metrics`` say otherwise, and the step's speed options checked by
    :mod:`kerasparse.step_options`. ``jit_compile="auto"`` is Keras' own per-backend choice
    (XLA on jax, and on TensorFlow with a GPU; eager on torch), so no backend test here.

    With a run's ``config``: its optimizer (:func:`build_optimizer` over ``steps_per_epoch``),
    ``jit_compile`` and ``steps_per_execution``; keyword arguments replace them. Without one,
    ``optimizer`` is required and the step options default to ``"auto"`` and 1. Returns
    ``model``."""
    import keras

    if config is not None:
        if optimizer is None:
            optimizer = build_optimizer(config, steps_per_epoch)
        if jit_compile is None:
            jit_compile = config["jit_compile"]
        if steps_per_execution is None:
            steps_per_execution = config["steps_per_execution"]
    elif optimizer is None:
        raise ValueError("compile_model needs a run's config or an optimizer. Received: "
                         "config=None, optimizer=None")
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) if loss is None
        else loss,
        metrics=None if metrics is None else list(metrics),
        **step_options.compile_kwargs(
            keras.backend.backend(), "auto" if jit_compile is None else jit_compile,
            steps_per_execution or 1,
        ),
    )
    return model



def data_q_star(config):
    """The input variance q* for the data: the config's, else the model's default where the
    model is an edge-of-chaos net (its registry entry ``takes_q_star``), else None."""
    from kerasparse import models

    if config["q_star"] is not None:  # a [model] table's q_star is here too (config.resolve)
        return config["q_star"]
    spec = models.MODELS.get(config["model"])
    return spec.defaults.get("q_star") if spec is not None and spec.takes_q_star else None


def build_optimizer(config, steps_per_epoch):
    import keras

    lr = config["lr"]
    total = max(1, config["epochs"] * steps_per_epoch)
    warmup = warmup_steps(config, steps_per_epoch)
    if warmup:
        # Keras' CosineDecay does the warm-up itself: lr * s / W for steps s < W (from 0),
        # then the cosine over the remaining steps; alpha=1 keeps the constant schedule flat.
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=max(1, total - warmup),
            alpha=1.0 if config["schedule"] == "constant" else 0.0,
            warmup_target=config["lr"],
            warmup_steps=warmup,
        )
    elif config["schedule"] == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config["lr"], decay_steps=total
        )
    if config["optimizer"] == "adam":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config["weight_decay"])
    return keras.optimizers.SGD(
        learning_rate=lr,
        momentum=config["momentum"],
        nesterov=config["nesterov"],
        weight_decay=config["weight_decay"] or None,
    )


def warmup_steps(config, steps_per_epoch):
    """The warm-up's length in steps: ``round(warmup_epochs * steps_per_epoch)``, at least 1
    when a warm-up is asked for; 0 without one."""
    epochs = config.get("warmup_epochs") or 0.0
    return max(1, round(epochs * steps_per_epoch)) if epochs > 0 else 0


def build_controller(config):
    from kerasparse import callbacks

    name = config["controller"]
    common = dict(
        monitor=config["monitor"],
        min_keep_ratio=config["min_keep_ratio"],
        max_keep_ratio=config["max_keep_ratio"],
    )
    extra = config.get("controller_args") or {}  # the [controller] table's other arguments
    if name == "add":
        smoothing = SMOOTHING[name] if config["smoothing"] is None else config["smoothing"]
        return callbacks.AdditiveKeepRatio(
            step=config["step"], smoothing=smoothing, drop=config["drop"], **common, **extra
        )
    if name == "mult":
        smoothing = SMOOTHING[name] if config["smoothing"] is None else config["smoothing"]
        return callbacks.MultiplicativeKeepRatio(
            factor=config["factor"], smoothing=smoothing, gap=config["gap"], **common, **extra
        )
    if name == "constant":
        return callbacks.ConstantKeepRatio(config["keep_ratio"], **extra)
    return None


# ---------------------------------------------------------------------------------------------
# The run, top to bottom: check the directory and the backend; build data, model and
# controller (nothing written yet); lock the directory; compile (optimizer); restore;
# callbacks, in their order; fit; summarise.


def run(out, config=None, backend=None, *, resume=False, overwrite=False, verbose=1,
        callbacks=None):
    """Train according to ``config`` (a resolved dict) into ``out``; returns summary.json.

    ``resume=True`` continues ``out`` from its latest checkpoint with its saved config.
    ``backend``: the Keras backend the caller means (None: the active one). Keras fixes its
    backend when it is first imported, so another name raises ConfigError (set KERAS_BACKEND,
    or call ``kerasparse.cli._app.use_backend``, before anything imports Keras).
    ``callbacks``: the caller's own Keras callbacks (logging to MLflow, W&B, ...), run after
    the runner's, so their ``logs`` hold the epoch's test metrics, keep ratio and nz (the
    config's ``callbacks`` entry, ``--callback module:factory``, adds more).
    Bad input (config, data source, model arguments) raises before anything is written.
    """
    # KERASPARSE_FAULT (the resume tests' faults) is read per run, for this run only.
    with interrupts.faults_armed(), stop_on_signals():
        _check_backend(backend)
        if resume:
            rundir.check(out, resume=True)
            config = saved_config(out)
        else:
            if config is None:
                raise ConfigError("no configuration given")
            rundir.check(out, overwrite=overwrite)
        return _run(out, config, resume, overwrite, verbose, list(callbacks or []))


def _check_backend(backend):
    if backend is None:
        return
    import keras

    active = keras.backend.backend()
    if backend != active:
        raise ConfigError(
            f"backend {backend!r} is not Keras' active backend {active!r} (Keras chooses it "
            f"on import: set KERAS_BACKEND={backend} first). Received: backend={backend!r}")


def _run(out, config, resume, overwrite, verbose, callbacks):
    from kerasparse import distribution

    with contextlib.ExitStack() as stack:
        # Model, optimizer and training all inside the distribution scope (--devices N).
        try:
            device_names = stack.enter_context(distribution.data_parallel(config["devices"]))
        except ValueError as exc:
            raise ConfigError(str(exc).splitlines()[0]) from None
        if config["tensorboard"]:
            from kerasparse.callbacks import tensorboard_scalars

            try:
                tensorboard_scalars.check_available()
            except tensorboard_scalars.MissingTensorBoard as exc:
                raise ConfigError(str(exc)) from None
        data, model, controller = _setup(config)  # fails early, writes nothing
        # The user's callbacks once the model is built (seeded first: a factory that draws
        # random numbers cannot change the initial weights).
        callbacks = callbacks + user_callbacks(config["callbacks"], out, config)
        interrupts.raise_if_stopped("during start-up; nothing was trained or written")
        if not resume:
            rundir.prepare(out, overwrite=overwrite)
        with rundir.RunLock(out):
            return _train(out, config, data, model, controller, resume=resume,
                          verbose=verbose, device_names=device_names, user_cbs=callbacks)


def _setup(config):
    """Data, model and controller for ``config``; errors become ConfigError (usage errors)."""
    import keras

    from kerasparse import data as ks_data

    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy(config["precision"])
    try:
        data = build_data(config)
        if config["controller"] in ("add", "mult"):
            # The controller reads its monitor at each epoch's end, before the test evaluation
            # and the sparsity monitor: only the training metrics (and the validation ones, with
            # a validation split) are logged by then. Checked here, before anything is written.
            has_val = data.val is not None
            logged = ["accuracy", "loss"] + (["val_accuracy", "val_loss"] if has_val else [])
            if config["monitor"] not in logged:
                raise ValueError(
                    f"monitor must be a metric logged before the controller reads it: "
                    f"{', '.join(logged)}"
                    + ("" if has_val else " (val_* need validation_split > 0)")
                    + f". Received: monitor={config['monitor']!r}")
        model = build_model(config, data)
        controller = build_controller(config)
        if controller is not None:
            from kerasparse.layers import GlobalTopK

            if not any(isinstance(layer, GlobalTopK) for layer in model._flatten_layers()):
                raise ValueError(
                    f"controller {config['controller']!r} moves the keep ratio of GlobalTopK "
                    f"sites, and model {config['model']!r} has none; use controller 'none'. "
                    f"Received: controller={config['controller']!r}"
                )
    except (ValueError, FileNotFoundError, ks_data.MissingDependencyError) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    return data, model, controller


def _train(out, config, data, model, controller, *, resume, verbose, device_names, user_cbs):
    """The locked part of a run: ``out`` exists and is this process's."""
    import keras

    from kerasparse import callbacks as ks_callbacks
    from kerasparse import devices, run_callbacks

    backend = keras.backend.backend()
    config = resolved_config(config)  # the values the run uses, defaults included

    # 1. A finished run has nothing to resume; a fresh one records its config first.
    if resume:
        summary_path = os.path.join(out, "summary.json")
        previous = rundir.read_json_object(summary_path) if os.path.exists(summary_path) else {}
        if (previous.get("status") == "completed"
                and previous.get("epochs_done", 0) >= config["epochs"]):  # not extended
            if verbose:
                print(f"{out}: already completed; nothing to resume")
            return previous
    else:
        rundir.atomic_write_json(os.path.join(out, "config.json"), {**config, "backend": backend})

    # 2. The optimizer and the compiled step.
    steps = data.steps_per_epoch(config["steps_per_epoch"])
    compile_model(model, config, steps)
    model.optimizer.build(model.trainable_variables)

    # 3. The record (history, checkpoints, best weights, summary), restored on resume.
    n_test = min(data.num_test, config["test_examples"] or data.num_test)
    record = RunRecord(
        out, config, backend, steps=steps, controller=controller,
        best_monitor="val_accuracy" if data.val is not None else "test_accuracy",
        # The data the numbers come from: val_* metrics are the validation part, test_* the
        # test part (its first test_examples where that is set).
        data_record={**data.split_record(), "test_evaluated": n_test},
        device_names=device_names,
        device_kind=devices.describe(backend, len(device_names or []) or 1),
        step_options={
            "data_format": getattr(model, "data_format", None),
            "jit_compile": bool(model.jit_compile),
            "steps_per_execution": config["steps_per_execution"],
            "precision": config["precision"],
        },
    )
    start = record.load_checkpoint(model) if resume else 0
    if resume and verbose:
        print(f"resuming {out} after epoch {start}")

    # 4. The callbacks, in the order run_callbacks.runner_callbacks documents.
    sparsity_monitor = None
    if config["monitor_batch"] and _has_activation_sites(model):
        x_mon, _ = data.sample(config["monitor_batch"])
        sparsity_monitor = ks_callbacks.SparsityMonitor(x_mon)
    tensorboard = None
    if config["tensorboard"]:
        tensorboard = ks_callbacks.TensorBoardScalars(os.path.join(out, TENSORBOARD))
    guard, cbs = run_callbacks.runner_callbacks(
        record,
        test_ds=data.test if config["test_examples"] is None
        else data.test.head(config["test_examples"]),
        controller=controller, sparsity_monitor=sparsity_monitor, tensorboard=tensorboard,
        user_callbacks=user_cbs, verbose=verbose,
    )

    # 5. Fit.
    if STOP.signum is not None:  # a signal during start-up: nothing trained in this process
        if not resume:
            _remove_fresh_run(out)
        interrupts.raise_if_stopped("during start-up; nothing was trained" + (
            "" if resume else " or kept"))
    if start < config["epochs"]:
        # Epoch e's batches are a pure function of (seed, e): a resumed run replays them.
        train_ds = data.train_epochs(config["epochs"], initial_epoch=start, steps_per_epoch=steps)
        try:
            model.fit(
                train_ds,
                epochs=config["epochs"],
                initial_epoch=start,
                steps_per_epoch=steps,
                validation_data=data.val,
                callbacks=cbs,
                shuffle=False,  # the epoch-indexed pipeline already shuffles
                verbose=0,
            )
        except Exception as exc:
            # An error before the first step finished, with compilation on, is the compiler's
            # (dynamo/inductor, XLA): one line saying how to turn it off, not a stack trace.
            if not model.jit_compile or guard.steps_done or isinstance(exc, KeyboardInterrupt):
                raise
            if not resume and not record.history:
                _remove_fresh_run(out)  # nothing was trained: leave nothing behind
            raise step_options.CompileFailed(
                step_options.compile_failure_message(exc, backend)
            ) from exc

    # 6. Summarise: status, model.keras, summary.json, the plots.
    status = "completed"
    if guard.diverged:
        status = "diverged"
        record.diverged = guard.diverged
        kept = record.last_checkpoint
        where = ("no epoch finished, so there is no checkpoint" if kept is None else
                 f"the last good checkpoint, {record.last_checkpoint_file} "
                 f"(epoch {kept}), is kept")
        print(
            f"Diverged: non-finite loss ({guard.diverged['loss']}) at epoch "
            f"{guard.diverged['epoch']}, step {guard.diverged['step']}; {where}"
        )
    elif len(record.history) < config["epochs"]:
        status = "interrupted"
        print(
            f"Stopped{interrupts.stop_reason()} after epoch {len(record.history)} of "
            f"{config['epochs']} (an epoch cut short is not recorded); resume with: "
            f"kerasparse train --resume {out}"
        )
    if status == "completed":
        model.save(os.path.join(out, "model.keras"))
    summary = record.summary(status)
    rundir.atomic_write_json(os.path.join(out, "summary.json"), summary)
    if record.history:
        from kerasparse import report

        report.plot_run(out)
    return summary


def _has_activation_sites(model):
    from kerasparse import callbacks as ks_callbacks

    try:
        return bool(ks_callbacks.find_activation_layers(model))
    except ValueError:  # a model without top-k sites or activation layers
        return False


# ---------------------------------------------------------------------------------------------
# The user's callbacks (--callback module:factory) and run directories


def user_callbacks(spec, out, config):
    """The callbacks of the config's ``callbacks`` entry: ``"module:factory"`` items
    separated by commas. Each factory (a callable: a Callback class, a function) is called
    with no arguments, or with ``run_dir=`` / ``config=`` where its signature takes them,
    and returns a ``keras.callbacks.Callback`` or a list of them. A module that cannot be
    imported, a missing factory or a wrong return value raise ConfigError (one line)."""
    import importlib
    import inspect

    import keras

    made = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        module_name, _, name = item.partition(":")
        if not module_name or not name:
            raise ConfigError(f"callbacks: expected module:factory. Received: {item!r}")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # the user's module: any error on import is theirs
            raise ConfigError(
                f"callbacks: cannot import module {module_name!r} ({_first_line(exc)}). "
                f"Received: {item!r}") from None
        factory = module
        for part in name.split("."):
            factory = getattr(factory, part, None)
        if not callable(factory):
            raise ConfigError(
                f"callbacks: module {module_name!r} has no callable {name!r}. Received: "
                f"{item!r}")
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        kwargs = {k: v for k, v in (("run_dir", out), ("config", config)) if k in params}
        try:
            result = factory(**kwargs)
        except Exception as exc:
            raise ConfigError(
                f"callbacks: {item} raised {type(exc).__name__} ({_first_line(exc)})"
            ) from None
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        for cb in result:
            if not isinstance(cb, keras.callbacks.Callback):
                raise ConfigError(
                    f"callbacks: {item} must return a keras.callbacks.Callback (or a list "
                    f"of them). Received: {type(cb).__name__}")
        made += result
    return made


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def extend_run(out, epochs):
    """Make run directory ``out`` train to ``epochs`` epochs in all (``--resume DIR --epochs
    N``): config.json's ``epochs`` is raised to N, under the run's lock, and the next
    :func:`run` with ``resume=True`` continues from the latest checkpoint to epoch N, a finished
    run included. The cosine schedule is rebuilt over the new total (its decay runs over N
    epochs' steps from the restored step count, so the rate rises back to that point of the
    longer curve: docs/training.md). N below the run's epochs raises ConfigError (a run is
    extended, never shortened); N equal to them changes nothing."""
    from kerasparse import config as ks_config

    rundir.check(out, resume=True)
    epochs = ks_config.validate({"epochs": epochs}, source="--epochs")["epochs"]
    config = saved_config(out)
    if epochs < config["epochs"]:
        raise ConfigError(
            f"--epochs must be at least the run's {config['epochs']} epochs: a resumed run "
            f"is extended, never shortened. Received: epochs={epochs}")
    if epochs > config["epochs"]:
        with rundir.RunLock(out):  # never under a process that is training it
            path = os.path.join(out, "config.json")
            saved = rundir.read_json_object(path)
            rundir.atomic_write_json(path, {**saved, "epochs": epochs})
    return config["epochs"]


def saved_config(out):
    """The resolved config of run directory ``out`` from its config.json; a damaged file or
    value raises RunDirError / ConfigError naming the file."""
    from kerasparse import config as ks_config

    path = os.path.join(out, "config.json")
    saved = {k: v for k, v in rundir.read_json_object(path).items() if k != "backend"}
    try:
        return resolve(overrides=ks_config.validate(saved, source=path), check_unread=False)
    except ConfigError as exc:
        message = str(exc)
        if not message.startswith(path):
            message = f"{path}: {message.removeprefix('command line: ')}"
        raise ConfigError(message) from None


def _remove_fresh_run(out):
    """Empty (and remove, if it empties) the directory of a fresh run that never finished a
    step: it holds only what this process wrote (rundir.prepare found it empty or emptied
    it)."""
    rundir.empty(out)
    with contextlib.suppress(OSError):
        os.rmdir(out)
