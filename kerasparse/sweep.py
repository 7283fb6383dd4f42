"""Sweeps: a grid of training runs on this machine or on a Ray cluster, then one table.

``kerasparse sweep`` is a thin command line over :func:`run`, which a notebook or a user's own
scheduler can call too::

    from kerasparse import sweep
    table = sweep.run("configs/dent-tanner2026-dnn-mnist-q3.toml",
                      grid={"sparsity": [0.8, 0.85], "v_prime": [0.5, 0.7]}, seeds=3,
                      out="runs/table1", executor="local", workers=2)
    table[0]["median_best_test_accuracy"]
    sweep.format_table1(sweep.table1(table))  # grids over sparsity x v_prime x q_star

Terms:

- a **cell** is one training run (a grid point and a seed). It is ``kerasparse train`` in a
  subprocess writing its own run directory ``<out>/<cell name>``, exactly what a researcher
  would run by hand, so every cell has its history, summary, checkpoints and plots, and resumes
  like any run;
- a **job** is what an executor runs: one cell, or with ``pack=N`` (``--pack N``) a *pack* of up
  to N compatible cells (:func:`kerasparse.packed.packs`: cells that differ only in seed,
  sparsity, q*, V') trained as one program by one ``kerasparse train-pack`` subprocess
  (:func:`kerasparse.packed.train_pack`), which writes every cell's own run directory as
  ``kerasparse train`` would. :func:`execute_job` runs a job wherever it lands;
- an **executor** places jobs: ``local`` runs up to ``workers`` jobs at a time, each in a thread
  that waits on its subprocess (one GPU per cell where there are several, else a share of the
  CPU cores); ``ray`` makes each job a Ray task with ``cpus_per_cell`` / ``gpus_per_cell``
  (a local Ray instance, or a cluster with ``address`` / RAY_ADDRESS).

The driver (:func:`run`) validates everything first (every cell's full configuration, model and
dataset names, the sweep folder, the executor's options; nothing is written on bad input),
skips finished cells, resumes interrupted ones, retries a failed cell once (from its checkpoint)
and then records it as failed in ``<out>/<cell>.failed.json``, shows a live table, and finally
aggregates ``sweep.csv`` / ``sweep.json`` from the run directories alone, so the table does not
depend on the executor. See docs/training.md ("Sweeps").

Neither Keras nor Ray is imported when this module is imported.
"""

import concurrent.futures
import dataclasses
import fnmatch
import importlib.util
import io
import itertools
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque

from kerasparse import config as ks_config
from kerasparse import report, rundir

EXECUTORS = ("local", "ray")
FINISHED = ("completed", "diverged")  # a re-run skips these cells
MAX_CELLS = 100_000  # a bigger grid is a typo (--seeds 1000000), not an experiment
PLAN_FILE = "sweep-plan.json"
LOGS = "logs"
USAGE_EXIT = 2  # `kerasparse train` refused its input: a retry would fail the same way
# Bytes a pack may use (a number, or with a K/M/G/T suffix: binary units); default: 90% of
# the free memory of the device a pack runs on (local executor), checked before the sweep
# starts, and by each pack's process on its device.
PACK_MEMORY_ENV = "KERASPARSE_PACK_MEMORY"
RAY_INSTALL = "pip install 'kerasparse[ray]'"
# Test hook (docs/training.md): "FAULT@CELL_GLOB[@ATTEMPTS]" entries separated by ";". FAULT is a
# KERASPARSE_FAULT value (batch:E:S, checkpoint:E) given to the matching cells' train process,
# or "worker" (Ray only: the Ray worker running the cell kills itself once the cell's training
# has started, i.e. written its config.json; the training process dies with it).
# ATTEMPTS: comma-separated attempt numbers, default 1 (the first attempt only).
FAULT_ENV = "KERASPARSE_SWEEP_FAULT"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"
# Cells that share a GPU must not each grab most of its memory up front.
SHARED_GPU_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


class SweepError(ks_config.ConfigError):
    """Bad sweep input: one line, raised before anything is written (the CLI exits with 2)."""


# ---------------------------------------------------------------------------------------------
# The plan: cells, each with its full, validated configuration


@dataclasses.dataclass
class Cell:
    name: str
    point: dict  # the grid values of this cell
    seed: int
    path: str  # its run directory
    config: dict  # the full resolved configuration (what its config.json will hold)


@dataclasses.dataclass
class Job:
    """A unit of work for an executor: cells that run together (one cell, or a pack)."""

    cells: list
    attempt: int = 1


@dataclasses.dataclass
class Plan:
    preset: object
    grid: dict
    seeds: list
    sets: dict
    backend: str
    out: str
    cells: list

    @property
    def keys(self):
        return list(self.grid)


def parse_grid(specs):
    """``["sparsity=0.8,0.85", "q_star=1,3"]`` -> ``{"sparsity": [0.8, 0.85], "q_star": [1.0, 3.0]}``.

    A key given twice and a value listed twice are refused; every value is validated."""
    grid = {}
    for spec in specs:
        if "=" not in spec:
            raise SweepError(f"--grid expects key=v1,v2,... Received: {spec!r}")
        key, raw = (part.strip() for part in spec.split("=", 1))
        if key in grid:
            raise SweepError(
                f"--grid {key} is given twice; list all its values in one option, e.g. "
                f"--grid {key}=v1,v2. Received: {spec!r}"
            )
        grid[key] = [ks_config.parse_scalar(v.strip()) for v in raw.split(",") if v.strip()]
        if not grid[key]:
            raise SweepError(f"--grid {key} has no values. Received: {spec!r}")
    return check_grid(grid)


def check_grid(grid):
    """Validate a ``{key: [values]}`` grid (keys, types, ranges, duplicates); coerced copy."""
    if not isinstance(grid, dict):
        raise SweepError(f"grid must be a dict of key: [values]. Received: grid={grid!r}")
    checked = {}
    for key, values in grid.items():
        if key == "seed":
            raise SweepError("use --seeds N (seeds=...) for seeds, not --grid seed=...")
        if isinstance(values, str) or not hasattr(values, "__iter__"):
            values = [values]
        values = list(values)
        if not values:
            raise SweepError(f"--grid {key} has no values")
        coerced = [ks_config.validate({key: v}, source="--grid")[key] for v in values]
        for i, value in enumerate(coerced):
            if value in coerced[:i]:
                raise SweepError(
                    f"--grid {key} lists {value!r} twice; each value once. "
                    f"Received: {key}={','.join(map(str, values))}"
                )
        checked[key] = coerced
    return checked


def _parse_sets(sets):
    if sets is None:
        return {}
    if isinstance(sets, dict):
        return ks_config.validate(sets, source="--set")
    values = {}
    for item in sets:
        key, value = ks_config.parse_assignment(item)
        values.update(ks_config.validate({key: value}, source="--set"))
    return values


def cell_name(point, seed):
    """``sparsity=0.8_v_prime=0.5_seed=3407``: the cell's directory name under --out."""
    parts = [f"{k}={v}" for k, v in point.items()] + [f"seed={seed}"]
    return "_".join(parts).replace("/", "-").replace(os.sep, "-")


def plan(preset=None, grid=None, seeds=1, *, sets=None, out=None, backend=None):
    """Validate a sweep and list its cells; writes nothing. Raises SweepError / ConfigError.

    ``grid``: ``{key: [values]}`` or CLI-style ``["key=v1,v2", ...]``; ``seeds``: a count N
    (the configured seed, +1, ... +N-1) or a list of seeds; ``sets``: ``{key: value}`` or
    ``["key=value", ...]`` applied to every cell.
    """
    if grid is None:
        grid = {}
    grid = parse_grid(grid) if isinstance(grid, list | tuple) else check_grid(grid)
    overrides = _parse_sets(sets)
    clash = [k for k in grid if k in overrides]
    if clash:
        raise SweepError(f"{clash[0]} is both swept (--grid) and fixed (--set); give it once")
    backend = _resolve_backend(backend)
    preset_values = ks_config.load_toml(preset) if preset is not None else {}
    # (Unread controller keys are checked per cell: a grid may set the controller.)
    base = ks_config.resolve(overrides={**preset_values, **overrides}, check_unread=False)
    seed_list = _seed_list(seeds, base["seed"])
    if out is None:
        stem = os.path.splitext(os.path.basename(str(preset)))[0] if preset else "defaults"
        out = os.path.join("runs", f"sweep-{stem}")
    out = os.path.abspath(os.fspath(out))
    keys = list(grid)
    count = math.prod(len(v) for v in grid.values()) * len(seed_list)
    if count > MAX_CELLS:
        raise SweepError(f"this sweep has {count} cells; at most {MAX_CELLS} are allowed")
    cells = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        for seed in seed_list:
            name = cell_name(point, seed)
            try:
                config = ks_config.resolve(
                    overrides={**preset_values, **overrides, **point, "seed": seed},
                    inherited=set(preset_values) - set(overrides) - set(point))
            except ks_config.ConfigError as exc:
                raise SweepError(f"cell {name}: {exc}") from None
            cells.append(Cell(name, point, seed, os.path.join(out, name), config))
    names = [c.name for c in cells]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SweepError(f"two cells would share the directory {name!r}; "
                             "make the grid values distinct")
    _check_out(out, cells, backend)  # names were checked by config.resolve
    return Plan(preset, grid, seed_list, overrides, backend, out, cells)


def _seed_list(seeds, base):
    if isinstance(seeds, bool) or not isinstance(seeds, int | list | tuple | range):
        raise SweepError(f"seeds must be a count or a list of seeds. Received: seeds={seeds!r}")
    if isinstance(seeds, int):
        if not 1 <= seeds <= MAX_CELLS:
            raise SweepError(f"--seeds must be in [1, {MAX_CELLS}]. Received: seeds={seeds}")
        seeds = [base + i for i in range(seeds)]
    seeds = [ks_config.validate({"seed": s}, source="seeds")["seed"] for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise SweepError(f"seeds must be distinct and not empty. Received: seeds={seeds}")
    return seeds


def _resolve_backend(backend):
    from kerasparse.cli._app import UsageError, resolve_backend

    try:
        return resolve_backend(backend)
    except UsageError as exc:
        raise SweepError(str(exc)) from None


def _leftovers_only(names):
    return all(n == ".lock" or n.startswith(".tmp-") for n in names)


def _check_out(out, cells, backend):
    """--out must be a new folder, or a sweep folder whose cells match this sweep."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise SweepError(f"--out {out!r} exists and is not a directory")
    parent = out
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise SweepError(f"--out {out!r} cannot be created: {parent!r} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SweepError(f"--out {out!r} cannot be written: no write permission on {parent!r}")
    if not os.path.isdir(out) or not os.listdir(out):
        return
    entries = set(os.listdir(out))
    names = {c.name for c in cells}
    ours = names | {n + ".failed.json" for n in names} | {
        LOGS, ".lock", PLAN_FILE, "sweep.csv", "sweep.json"}
    if PLAN_FILE not in entries and "sweep.json" not in entries and not entries <= ours:
        raise SweepError(
            f"--out {out!r} is not empty and is not a kerasparse sweep folder (no {PLAN_FILE}); "
            "choose a new folder"
        )
    for cell in cells:
        if not os.path.exists(cell.path):
            continue
        if not os.path.isdir(cell.path):
            raise SweepError(f"cell {cell.path!r} exists and is not a directory")
        config_path = os.path.join(cell.path, "config.json")
        if not os.path.exists(config_path):
            if not _leftovers_only(os.listdir(cell.path)):
                raise SweepError(
                    f"{cell.path!r} exists and is not a kerasparse run (no config.json); "
                    "move it away or choose another --out"
                )
            continue
        try:
            saved = rundir.read_json(config_path)
        except (OSError, ValueError) as exc:
            raise SweepError(f"cannot read {config_path!r}: {exc}") from None
        if not isinstance(saved, dict):
            raise SweepError(f"{config_path!r} is not a kerasparse run configuration")
        if saved.get("backend", backend) != backend:
            raise SweepError(
                f"{cell.path!r} was trained on {saved['backend']!r}, this sweep runs "
                f"{backend!r}; pass --backend {saved['backend']} or choose another --out"
            )
        for key, value in cell.config.items():
            # None in the plan is "the default": config.json records it resolved (the
            # model's activation, a controller's smoothing, ...), so any value matches.
            if key in saved and value is not None and saved[key] != value:
                raise SweepError(
                    f"{cell.path!r} holds a run with {key}={saved[key]!r}, this sweep asks for "
                    f"{key}={value!r}; choose another --out (or move that cell away)"
                )


# ---------------------------------------------------------------------------------------------
# One cell on whatever machine runs it


def cell_state(path):
    """completed / diverged (finished: skipped), resumable (has a checkpoint), started
    (config.json, no checkpoint), new."""
    summary = _read_json(os.path.join(path, "summary.json"))
    if isinstance(summary, dict) and summary.get("status") in FINISHED:
        return summary["status"]
    if os.path.isfile(os.path.join(path, "checkpoints", "latest.json")):
        return "resumable"
    if os.path.isfile(os.path.join(path, "config.json")):
        return "started"
    return "new"


def _read_json(path):
    try:
        return rundir.read_json(path)
    except (OSError, ValueError):
        return None


def _toml(value):
    """A config value as a TOML scalar for ``--set key=value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    return repr(value)


def train_args(cell, backend, state):
    """``-m kerasparse.cli train ...`` for this cell: resume it from its checkpoint, or start
    it with its full configuration (so no preset file needs to reach the workers)."""
    args = ["-m", "kerasparse.cli", "train", "--backend", backend]
    if state == "resumable":
        return args + ["--resume", cell.path]
    args += ["--out", cell.path]
    if state == "started":  # a kerasparse run killed before its first checkpoint
        args.append("--overwrite")
    for key, value in cell.config.items():
        if value != ks_config.FIELDS[key].default:
            args += ["--set", f"{key}={_toml(value)}"]
    return args


def checkpoint_epoch(path):
    """The newest epoch for which the cell holds both checkpoint files (0: none). A pack
    killed between two cells' ``latest.json`` flips leaves some cells pointing at the
    previous epoch with the new epoch's files written: a packed resume restores those."""
    folder = os.path.join(path, "checkpoints")
    try:
        names = set(os.listdir(folder))
    except OSError:
        return 0
    epochs = [int(n[6:10]) for n in names if n.startswith("epoch-")
              and n.endswith((".npz", ".weights.h5"))
              and n[6:10].isdigit() and f"epoch-{n[6:10]}.json" in names]
    return max(epochs, default=0)


def start_key(path):
    """How a pack starts this unfinished cell: ``("fresh",)`` (new, or started without a
    checkpoint: trained from the beginning) or ``("resume", epoch)``. Only cells with equal
    keys are packed together, so that a resumed pack's members all hold the epoch it
    restores (a pack restores the newest epoch all its members hold)."""
    epoch = checkpoint_epoch(path)
    if epoch and os.path.isfile(os.path.join(path, "config.json")):
        if os.path.isfile(os.path.join(path, "checkpoints", f"epoch-{epoch:04d}.weights.h5")):
            # Written by `kerasparse train` (a cell run or retried alone): a pack restores its
            # members from the .npz files packs write, so this cell resumes alone.
            return ("alone", path)
        return ("resume", epoch)
    return ("fresh",)


def pack_name(cells):
    """The name of a pack (its log: ``<out>/logs/<name>.log``): its first cell's and the
    number of cells."""
    return f"pack-{cells[0].name}+{len(cells) - 1}"


def train_pack_args(cells, backend, key, *, overwrite=False, memory_limit=None):
    """``-m kerasparse.cli train-pack ...`` for a pack of compatible cells: resume them, or
    start them with their full configurations (the shared settings as ``--set``, each
    cell's own seed / sparsity / q* / V' as ``--member``), no preset file needed."""
    from kerasparse.packed import PER_MEMBER

    args = ["-m", "kerasparse.cli", "train-pack", "--backend", backend]
    if memory_limit is not None:
        args += ["--memory-limit", str(int(memory_limit))]
    if key[0] == "resume":
        args.append("--resume")
        for cell in cells:
            args += ["--cell", cell.path]
        return args
    if overwrite:
        args.append("--overwrite")
    for key_, value in cells[0].config.items():
        if key_ not in PER_MEMBER and value != ks_config.FIELDS[key_].default:
            args += ["--set", f"{key_}={_toml(value)}"]
    for cell in cells:
        own = [f"{k}={_toml(cell.config[k])}" for k in PER_MEMBER if cell.config[k] is not None]
        args += ["--cell", cell.path, "--member", ",".join(own)]
    return args


# Runs the train command: PR_SET_PDEATHSIG makes the kernel kill the training process if the
# thread (local executor) or Ray worker that waits on it dies, so a killed worker never leaves
# an orphan holding the run's lock; then the CPU cores of this cell (local executor, CPU
# only); it unblocks every signal (a Ray worker starts its children with SIGINT blocked, and
# the mask survives exec: train would never see the driver's Ctrl-C); then exec. A few lines
# of Python rather than preexec_fn, which is unsafe in a threaded parent.
_LAUNCHER = """\
import ctypes, os, signal, sys
ppid, cores = int(sys.argv[1]), sys.argv[2]
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() != ppid:
        os._exit(137)
    if cores:
        os.sched_setaffinity(0, {int(c) for c in cores.split(",")})
if hasattr(signal, "pthread_sigmask"):
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
os.execv(sys.executable, [sys.executable] + sys.argv[3:])
"""


def execute_job(spec, control=None):
    """Run one job on this machine; one result dict per cell. Without ``pack``, its cells
    one after another, each a ``kerasparse train`` subprocess; with ``pack``, its cells as
    one ``kerasparse train-pack`` subprocess (a pack of one cell: ``kerasparse train``).

    ``spec`` (plain data, so that it can travel to a Ray worker): ``cells`` (Cell fields),
    ``backend``, ``attempt``, ``env`` (extra environment: threads, GPU), ``cores`` (CPU
    affinity or ""), ``cwd``, ``faults`` ({cell: KERASPARSE_FAULT value}), ``worker_faults``
    (cells whose worker dies mid-run: a test hook), ``pack`` (bool), ``memory_limit``
    (bytes a pack may use, or None). ``control``: the local executor (it can interrupt the
    subprocesses).
    """
    cells = [Cell(**fields) for fields in spec["cells"]]
    if spec.get("pack") and len(cells) > 1:
        return _run_pack(cells, spec, control)
    results = []
    for cell in cells:
        if control is not None and control.stopping.is_set():
            results.append({"cell": cell.name, "returncode": None, "error": "not started",
                            "host": platform.node()})
            continue
        results.append(_run_cell(cell, spec, control))
    return results


def _clean_leftovers(cell):
    if os.path.isdir(cell.path) and _leftovers_only(os.listdir(cell.path)):
        # A run killed before it wrote config.json: only its lock file / temporaries are left.
        for name in os.listdir(cell.path):
            os.unlink(os.path.join(cell.path, name))


def _job_env(spec, fault):
    env = dict(os.environ)
    for name in ("KERASPARSE_FAULT", FAULT_ENV):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for key, value in spec["env"].items():
        if key in THREAD_VARS and key in os.environ:
            continue  # the user's own thread setting wins
        env[key] = value
    if fault:
        env["KERASPARSE_FAULT"] = fault
    return env


def _launch(args, env, log, spec):
    cwd = spec.get("cwd")
    return subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(os.getpid()), spec.get("cores", ""), *args],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        cwd=cwd if cwd and os.path.isdir(cwd) else None,
        start_new_session=True,  # Ctrl-C reaches the driver only; it forwards one SIGINT
    )


def _run_pack(cells, spec, control):
    """The unfinished cells of a pack job as one ``train-pack`` subprocess (normally one:
    cells that would start differently, see :func:`start_key`, run as separate packs one
    after another). Its output goes to ``<out>/logs/<pack name>.log``; each cell's own log
    gets a line naming that log and one with the pack's result."""
    results = {}
    started = time.time()
    groups = {}
    for cell in cells:
        if control is not None and control.stopping.is_set():
            results[cell.name] = {"cell": cell.name, "returncode": None, "error": "not started",
                                  "host": platform.node()}
        elif cell_state(cell.path) in FINISHED:
            results[cell.name] = {"cell": cell.name, "attempt": spec["attempt"],
                                  "host": platform.node(), "started": started, "returncode": 0,
                                  "error": None, "finished": started, "command": None}
        else:
            _clean_leftovers(cell)
            groups.setdefault(start_key(cell.path), []).append(cell)
    for key, group in groups.items():
        if control is not None and control.stopping.is_set():
            for cell in group:
                results[cell.name] = {"cell": cell.name, "returncode": None,
                                      "error": "not started", "host": platform.node()}
        elif len(group) == 1:
            results[group[0].name] = _run_cell(group[0], spec, control)
        else:
            for result in _run_pack_process(group, key, spec, control):
                results[result["cell"]] = result
    return [results[c.name] for c in cells]


def _run_pack_process(cells, key, spec, control):
    started = time.time()
    overwrite = key[0] == "fresh" and any(cell_state(c.path) == "started" for c in cells)
    args = train_pack_args(cells, spec["backend"], key, overwrite=overwrite,
                           memory_limit=spec.get("memory_limit"))
    fault = next((spec["faults"][c.name] for c in cells if c.name in spec["faults"]), None)
    env = _job_env(spec, fault)
    name = pack_name(cells)
    logs = os.path.join(os.path.dirname(cells[0].path), LOGS)
    log_path = os.path.join(logs, name + ".log")
    os.makedirs(logs, exist_ok=True)
    header = (f"=== attempt {spec['attempt']} on {platform.node()} at "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    for cell in cells:
        with open(os.path.join(logs, cell.name + ".log"), "ab") as f:
            f.write(f"{header}: in {name} ({len(cells)} cells, one program); its output: "
                    f"{log_path}\n".encode())
    with open(log_path, "ab") as log:
        offset = log.tell()
        log.write(f"{header}: python {' '.join(args)}\n".encode())
        log.flush()
        proc = _launch(args, env, log, spec)
        if control is not None:
            control.register(name, proc)
        worker_fault = any(c.name in spec.get("worker_faults", ()) for c in cells)
        try:
            returncode = _wait(proc, cells[0], worker_fault)
        finally:
            if control is not None:
                control.unregister(name)
    error = error_line(log_path, offset, returncode)
    for cell in cells:
        with open(os.path.join(logs, cell.name + ".log"), "ab") as f:
            f.write(f"=== {name} exited with code {returncode}"
                    f"{': ' + error if error else ''}\n".encode())
    finished = time.time()
    command = [os.path.basename(sys.executable), *args]
    return [{"cell": c.name, "attempt": spec["attempt"], "host": platform.node(),
             "started": started, "returncode": returncode, "finished": finished,
             "error": error, "command": command, "log": log_path} for c in cells]


def _run_cell(cell, spec, control):
    started = time.time()
    state = cell_state(cell.path)
    base = {"cell": cell.name, "attempt": spec["attempt"], "host": platform.node(),
            "started": started}
    if state in FINISHED:
        return {**base, "returncode": 0, "error": None, "finished": started, "command": None}
    _clean_leftovers(cell)
    args = train_args(cell, spec["backend"], state)
    env = _job_env(spec, spec["faults"].get(cell.name))
    log_path = os.path.join(os.path.dirname(cell.path), LOGS, cell.name + ".log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        offset = log.tell()
        log.write(f"=== attempt {spec['attempt']} on {platform.node()} at "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}: python {' '.join(args)}\n".encode())
        log.flush()
        proc = _launch(args, env, log, spec)
        if control is not None:
            control.register(cell.name, proc)
        try:
            returncode = _wait(proc, cell, cell.name in spec.get("worker_faults", ()))
        finally:
            if control is not None:
                control.unregister(cell.name)
    return {**base, "returncode": returncode, "finished": time.time(),
            "error": error_line(log_path, offset, returncode),
            "command": [os.path.basename(sys.executable), *args], "log": log_path}


def _interrupt_marker(cell):
    """The file by which the driver asks a cell running on Ray to stop (RayExecutor.interrupt).
    A side channel beside ``ray.cancel``, whose KeyboardInterrupt in the worker is best effort:
    in three full test runs a cancelled cell ran all its epochs, repeated cancels included.
    The sweep directory is shared by driver and workers already (cells write their results
    there), so a file reaches the worker wherever it runs."""
    return os.path.join(os.path.dirname(cell.path), LOGS, cell.name + ".interrupt")


def _wait(proc, cell, worker_fault):
    interrupted = False
    while True:
        try:
            return proc.wait(timeout=0.2 if worker_fault else 0.5)
        except subprocess.TimeoutExpired:
            if worker_fault and os.path.isfile(os.path.join(cell.path, "config.json")):
                os.kill(os.getpid(), signal.SIGKILL)  # test hook: this worker dies mid-cell
            if not interrupted and os.path.exists(_interrupt_marker(cell)):
                interrupted = True  # the driver's stop request (RayExecutor.interrupt)
                proc.send_signal(signal.SIGINT)
        except KeyboardInterrupt:  # ray.cancel of this task (RayExecutor.interrupt)
            # One SIGINT: train stops after this batch, resumable. The stop file (above)
            # carries the same request, so either channel sends it once; a second Ctrl-C
            # is a forced cancel (the worker dies).
            if not interrupted:
                interrupted = True
                proc.send_signal(signal.SIGINT)


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def error_line(log_path, offset, returncode):
    """Why an attempt failed, in one line: a signal, the `Error: ...` line of a usage error,
    the last line of a traceback, else the last line of output."""
    if returncode in (0, 3):
        return None
    if returncode == 130:
        return "interrupted (exit 130); a re-run resumes it"
    if returncode is not None and returncode < 0:
        with_name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else ""
        return f"killed by {with_name or f'signal {-returncode}'}"
    try:
        with open(log_path, "rb") as f:
            f.seek(max(offset, os.path.getsize(log_path) - 65536))
            text = f.read().decode(errors="replace")
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines  # not our header, not a rich table's rules
             if not line.startswith("=== attempt") and not line[0] in "┌│└┏┃┗┡━─"]
    for pattern in (lambda s: s.startswith("Error:"), _EXCEPTION_LINE.match):
        for line in reversed(lines):
            if pattern(line):
                return line
    return lines[-1] if lines else f"exit code {returncode}"


# ---------------------------------------------------------------------------------------------
# Executors


def visible_gpus(environ=None):
    """GPU ids for CUDA_VISIBLE_DEVICES, without importing a backend: the ones listed in
    CUDA_VISIBLE_DEVICES if it is set, else the GPUs ``nvidia-smi -L`` lists (none if absent)."""
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = [part.strip() for part in listed.split(",") if part.strip()]
        return [] if not ids or ids[0].startswith("-") else ids
    try:
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(
        line for line in result.stdout.splitlines() if line.startswith("GPU "))]


def thread_env(threads, backend):
    """Environment that keeps a cell to ``threads`` CPU threads (OpenMP / MKL / OpenBLAS for
    torch and NumPy, TensorFlow's intra/inter-op pools, XLA's Eigen pool on JAX at 1)."""
    env = {name: str(threads) for name in THREAD_VARS}
    if backend == "jax" and threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            env["XLA_FLAGS"] = (flags + " " + XLA_ONE_THREAD).strip()
    return env


def _usable_cores():
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class LocalExecutor:
    """Up to ``workers`` cells at a time on this machine, each a subprocess waited on by a
    thread. With GPUs: one GPU per cell (CUDA_VISIBLE_DEVICES, least-used first; several
    cells per GPU only if workers > GPUs). Without: each cell gets ``cpus_per_cell`` threads
    (default: the cores divided by workers; unlimited with one worker) on cores of its own."""

    name = "local"

    def __init__(self, backend, workers=None, cpus_per_cell=None):
        self.backend = backend
        self.gpus = visible_gpus()
        self.workers = workers or max(1, len(self.gpus))
        cores = _usable_cores()
        self.threads = None
        self.cores = {}
        if cpus_per_cell is not None and cpus_per_cell > len(cores):
            raise SweepError(f"--cpus-per-cell {cpus_per_cell:g} is more than the {len(cores)} "
                             "CPU cores this process may use")
        if not self.gpus:
            if cpus_per_cell is not None:
                self.threads = max(1, math.ceil(cpus_per_cell))
            elif self.workers > 1:
                self.threads = max(1, len(cores) // self.workers)
            if self.threads and self.threads * self.workers <= len(cores):
                for slot in range(self.workers):
                    chunk = cores[slot * self.threads:(slot + 1) * self.threads]
                    self.cores[slot] = ",".join(map(str, chunk))
        self.used = set()  # slot ids of the running jobs (slot -> GPU or cores)
        self.pool = None
        self.running = {}
        self.procs = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def start(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="kerasparse-sweep")

    def describe(self):
        if self.gpus:
            return f"local, {self.workers} at a time on GPUs {','.join(self.gpus)}"
        threads = f", {self.threads} thread(s) each" if self.threads else ""
        return f"local, {self.workers} at a time on the CPU{threads}"

    def slots(self):
        return self.workers - len(self.used)

    def busy(self):
        return bool(self.running)

    def submit(self, job, spec):
        slot = min(set(range(len(self.used) + 1)) - self.used)
        self.used.add(slot)
        env, where = {}, "CPU"
        if self.gpus:
            gpu = self.gpus[slot % len(self.gpus)]
            env["CUDA_VISIBLE_DEVICES"] = gpu
            where = f"GPU {gpu}"
            if self.workers > len(self.gpus):
                env.update(SHARED_GPU_ENV)
        elif self.threads:
            env.update(thread_env(self.threads, self.backend))
            if slot in self.cores:
                where = f"CPU {self.cores[slot]}"
        spec = {**spec, "env": env, "cores": self.cores.get(slot, "")}
        future = self.pool.submit(execute_job, spec, self)
        self.running[future] = (job, slot)
        return where

    def has_started(self, job):
        return True

    def wait(self, timeout):
        if not self.running:
            return []
        done, _ = concurrent.futures.wait(
            list(self.running), timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        finished = []
        for future in done:
            job, slot = self.running.pop(future)
            self.used.discard(slot)
            try:
                finished.append((job, future.result(), None))
            except Exception as exc:  # a bug or an OS error in the thread: the job failed
                finished.append((job, None, exc))
        return finished

    def register(self, name, proc):
        with self.lock:
            self.procs[name] = proc
            if self.stopping.is_set():
                proc.send_signal(signal.SIGINT)

    def unregister(self, name):
        with self.lock:
            self.procs.pop(name, None)

    def interrupt(self):
        with self.lock:
            self.stopping.set()
            for proc in self.procs.values():
                proc.send_signal(signal.SIGINT)

    def kill(self):
        with self.lock:
            for proc in self.procs.values():
                proc.kill()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class RayExecutor:
    """Each job a Ray task (``num_cpus=cpus_per_cell``, ``num_gpus=gpus_per_cell``) that runs
    :func:`execute_job` on the node Ray picks; Ray sets CUDA_VISIBLE_DEVICES. Ray's own task
    retries are off (``max_retries=0``): the driver retries a failed cell itself, once, the
    same way for both executors. Starts a local Ray instance unless ``address`` (or
    RAY_ADDRESS) names a cluster, or Ray is already initialised in this process."""

    name = "ray"

    def __init__(self, backend, workers=None, cpus_per_cell=None, gpus_per_cell=None,
                 address=None):
        self.backend = backend
        self.workers = workers
        self.cpus = 1.0 if cpus_per_cell is None else float(cpus_per_cell)
        self.gpus = gpus_per_cell
        self.address = address
        self.owned = False
        self.refs = {}
        self.remote = None
        self.markers = set()  # the stop requests written (_interrupt_marker), removed on close

    def start(self):
        import ray

        address = self.address or os.environ.get("RAY_ADDRESS")
        if address:
            check_ray_address(address)
        if not ray.is_initialized():
            options = dict(include_dashboard=False, log_to_driver=False,
                           logging_level="warning")
            if not address:
                options["object_store_memory"] = 100 * 2**20  # only small results travel
            try:
                ray.init(address=address, **options)
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError, ...
                where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
                raise SweepError(f"cannot start or join {where}: {_first_line(exc)}") from None
            self.owned = True
        try:
            self._check_resources(ray)
        except SweepError:
            self.close()
            raise
        self.remote = ray.remote(execute_job).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0, retry_exceptions=False)

    def _check_resources(self, ray):
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        max_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
        max_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
        if self.gpus is None:
            self.gpus = 1.0 if max_gpus >= 1 else 0.0
        if self.gpus > max_gpus:
            raise SweepError(
                f"--gpus-per-cell {self.gpus:g} is more than any node of the Ray cluster has "
                f"(at most {max_gpus:g} GPUs on a node)"
            )
        if self.cpus > max_cpus:
            raise SweepError(
                f"--cpus-per-cell {self.cpus:g} is more than any node of the Ray cluster has "
                f"(at most {max_cpus:g} CPUs on a node)"
            )

    def describe(self):
        import ray

        total = ray.cluster_resources()
        return (f"ray, {len([n for n in ray.nodes() if n.get('Alive')])} node(s), "
                f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs; per cell "
                f"{self.cpus:g} CPU, {self.gpus:g} GPU")

    def slots(self):
        return (self.workers - len(self.refs)) if self.workers else 1 << 30

    def busy(self):
        return bool(self.refs)

    def submit(self, job, spec):
        for cell in job.cells:  # a stop request left by an earlier, interrupted run
            _remove_quietly(_interrupt_marker(cell))
        env = {}
        if self.gpus == 0:
            env.update(thread_env(max(1, math.ceil(self.cpus)), self.backend))
        elif self.gpus < 1:
            env.update(SHARED_GPU_ENV)
        ref = self.remote.remote({**spec, "env": env, "cores": ""})
        self.refs[ref] = (job, {c.name: _log_size(c) for c in job.cells})
        return "ray"

    def has_started(self, job):
        for ref, (other, sizes) in self.refs.items():
            if other is job:
                return any(_log_size(c) != sizes[c.name] for c in job.cells)
        return True

    def wait(self, timeout):
        import ray

        if not self.refs:
            return []
        ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=timeout)
        finished = []
        for ref in ready:
            job, _ = self.refs.pop(ref)
            try:
                finished.append((job, ray.get(ref), None))
            except ray.exceptions.RayError as exc:  # worker or node died, task cancelled
                finished.append((job, None, exc))
        return finished

    def interrupt(self):
        import ray

        for ref in list(self.refs):
            ray.cancel(ref)  # queued: dropped; running: KeyboardInterrupt -> SIGINT to train
        # And the stop request by file, which the worker polls (_wait): cancellation alone
        # was lost in full test runs.
        for job, _ in self.refs.values():
            for cell in job.cells:
                marker = _interrupt_marker(cell)
                if marker not in self.markers:
                    os.makedirs(os.path.dirname(marker), exist_ok=True)
                    with open(marker, "w") as f:
                        f.write("interrupted by the sweep's driver\n")
                    self.markers.add(marker)

    def kill(self):
        import ray

        for ref in list(self.refs):
            ray.cancel(ref, force=True)

    def close(self):
        for marker in self.markers:
            _remove_quietly(marker)
        self.markers.clear()
        if self.owned:
            import ray

            ray.shutdown()
            self.owned = False


def _log_size(cell):
    try:
        return os.path.getsize(os.path.join(os.path.dirname(cell.path), LOGS, cell.name + ".log"))
    except OSError:
        return -1


def _first_line(exc):
    for line in str(exc).splitlines():
        if line.strip():
            return f"{type(exc).__name__}: {line.strip()}"
    return type(exc).__name__


def check_ray_address(address):
    """Fail fast (one line) if ``host:port`` / ``ray://host:port`` does not answer."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(
            f"--address must be host:port (or ray://host:port, auto). Received: {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SweepError(f"cannot reach the Ray cluster at --address {address}: {reason}") from None


def make_executor(executor, backend, *, workers=None, cpus_per_cell=None, gpus_per_cell=None,
                  address=None):
    """Check the executor options (SweepError on bad ones) and build the executor."""
    if executor not in EXECUTORS:
        raise SweepError(f"--executor must be one of {', '.join(EXECUTORS)}. "
                         f"Received: executor={executor!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise SweepError(f"--workers must be a whole number >= 1. Received: workers={workers!r}")
    if cpus_per_cell is not None and not (_finite(cpus_per_cell) and cpus_per_cell > 0):
        raise SweepError(
            f"--cpus-per-cell must be a number > 0. Received: cpus_per_cell={cpus_per_cell!r}")
    if gpus_per_cell is not None:
        if not (_finite(gpus_per_cell) and gpus_per_cell >= 0):
            raise SweepError(f"--gpus-per-cell must be a number >= 0 (fractions share a GPU). "
                             f"Received: gpus_per_cell={gpus_per_cell!r}")
        if gpus_per_cell > 1 and gpus_per_cell != int(gpus_per_cell):
            raise SweepError(f"--gpus-per-cell above 1 must be a whole number. "
                             f"Received: gpus_per_cell={gpus_per_cell!r}")
    if executor == "local":
        for option, value in (("--gpus-per-cell", gpus_per_cell), ("--address", address)):
            if value is not None:
                raise SweepError(
                    f"{option} is for --executor ray; the local executor gives each cell a GPU "
                    "of its own when there are GPUs (see --workers)")
        return LocalExecutor(backend, workers, cpus_per_cell)
    if importlib.util.find_spec("ray") is None:
        raise SweepError(f"--executor ray needs Ray, an optional extra: {RAY_INSTALL}")
    return RayExecutor(backend, workers, cpus_per_cell, gpus_per_cell, address)


def _finite(value):
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# The driver


class SweepTable(list):
    """The aggregate table (a list of row dicts, one per grid point) with, as attributes,
    ``out``, ``cells`` (per cell: status, attempts, error), ``failed`` (cell names) and
    ``interrupted``."""

    def __init__(self, rows, out=None, cells=None, interrupted=False):
        super().__init__(rows)
        self.out = out
        self.cells = cells or []
        self.failed = [c["cell"] for c in self.cells if c["status"] == "failed"]
        self.interrupted = interrupted


def run(preset=None, grid=None, seeds=1, *, sets=None, out=None, backend=None,
        executor="local", workers=None, cpus_per_cell=None, gpus_per_cell=None, address=None,
        retries=1, pack=1, pack_memory=None, dry_run=False, progress=True, console=None):
    """Run ``preset`` over ``grid`` x ``seeds``; return the aggregate table (a SweepTable).

    ``grid``: ``{key: [values]}`` (or ``["key=v1,v2"]``); ``seeds``: a count or a list;
    ``sets``: ``{key: value}`` for every cell; ``executor``: ``"local"`` (``workers`` at a
    time, ``cpus_per_cell`` threads each on a CPU machine) or ``"ray"`` (``cpus_per_cell``,
    ``gpus_per_cell``, ``address``); ``retries``: how often a failed cell is tried again;
    ``pack``: train up to this many compatible cells as one program (1: each cell on its
    own; see :func:`pack_jobs`); ``pack_memory``: bytes a pack may use (default
    $KERASPARSE_PACK_MEMORY, else 90% of the device's free memory);
    ``dry_run``: validate and list the cells, write nothing. Bad input raises SweepError (a
    ConfigError) before anything is written. Failed cells do not raise: see
    ``table.failed``.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise SweepError(f"retries must be a whole number >= 0. Received: retries={retries!r}")
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise SweepError(f"--pack must be a whole number >= 1 (cells trained as one program; "
                         f"1: each cell on its own). Received: pack={pack!r}")
    explicit_memory = _pack_memory(pack_memory) if pack > 1 else None
    ex = make_executor(executor, _resolve_backend(backend), workers=workers,
                       cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell, address=address)
    the_plan = plan(preset, grid, seeds, sets=sets, out=out, backend=backend)
    if pack > 1:
        check_packs(the_plan, pack, ex, explicit_memory)
    faults = _parse_faults(os.environ.get(FAULT_ENV, ""))
    if console is None:
        from rich.console import Console

        console = Console()
    if dry_run:
        where = {}
        if pack > 1:
            todo = [c for c in the_plan.cells if cell_state(c.path) not in FINISHED]
            for k, job in enumerate(pack_jobs(todo, pack), 1):
                for cell in job.cells:
                    where[cell.name] = f" (pack {k}: {len(job.cells)} cells)"
        for cell in the_plan.cells:
            state = cell_state(cell.path)
            action = {"completed": "skip (completed)", "diverged": "skip (diverged)",
                      "resumable": "resume", "started": "restart", "new": "run"}[state]
            if progress:
                console.print(f"{cell.path}  {action}{where.get(cell.name, '')}",
                              highlight=False, markup=False)
        return SweepTable(aggregate(the_plan), the_plan.out)
    try:
        ex.start()  # Ray: start or join, check the resources (SweepError: nothing written)
        try:
            os.makedirs(the_plan.out, exist_ok=True)
        except OSError as exc:
            raise SweepError(f"cannot create --out {the_plan.out!r}: {exc.strerror}") from None
        with rundir.RunLock(the_plan.out):
            _write_plan(the_plan, ex, pack)
            driver = _Driver(the_plan, ex, retries, faults, console if progress else None,
                             pack=pack, memory_limit=explicit_memory)
            records, interrupted = driver.run()
            rows = aggregate(the_plan)
            write_table(the_plan.out, rows)
    finally:
        ex.close()
    table = SweepTable(rows, the_plan.out, records, interrupted)
    if progress:
        print_table(rows, the_plan.out, console)
        for record in records:
            if record["status"] == "failed":
                console.print(f"failed: {record['cell']}: {record['error']} (log: "
                              f"{record['log']})",
                              highlight=False, markup=False, soft_wrap=True)
    return table


def _parse_faults(text):
    faults = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        fault, _, rest = part.partition("@")
        pattern, _, attempts = rest.partition("@")
        try:
            numbers = {int(a) for a in attempts.split(",")} if attempts else {1}
        except ValueError:
            raise SweepError(f"{FAULT_ENV}: expected FAULT@CELL_GLOB[@ATTEMPTS]. "
                             f"Received: {part!r}") from None
        faults.append((fault, pattern or "*", numbers))
    return faults


def _pack_memory(value):
    """The explicit pack memory limit in bytes (``pack_memory=``, else $KERASPARSE_PACK_MEMORY),
    or None."""
    source = "pack_memory"
    if value is None:
        value = os.environ.get(PACK_MEMORY_ENV, "").strip() or None
        source = PACK_MEMORY_ENV
        if value is None:
            return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)i?B?\s*", value, re.IGNORECASE)
        if not match:
            raise SweepError(f"{source} must be a number of bytes, optionally with K, M, G or T "
                             f"(binary units). Received: {value!r}")
        value = float(match[1]) * 1024 ** " KMGT".index(match[2].upper() or " ")
    if isinstance(value, bool) or not _finite(value) or value <= 0:
        raise SweepError(f"{source} must be a number of bytes > 0. Received: {value!r}")
    return int(value)


def _host_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gpu_free(gpus):
    """Free MiB -> bytes of the listed GPUs (nvidia-smi; {} if it cannot tell)."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    free = {}
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        index, _, mib = (part.strip() for part in line.partition(","))
        if index in gpus and mib.isdigit():
            free[index] = int(mib) * 2**20
    return free


def _memory_limit(ex):
    """(bytes a pack may use, what that is) where the driver can tell without starting a
    backend: the local executor's GPUs (nvidia-smi) or this host; (None, None) on Ray (each
    pack checks its own device when it starts)."""
    from kerasparse.packed import MEMORY_HEADROOM

    if ex.name != "local":
        return None, None
    if ex.gpus:
        free = _gpu_free(ex.gpus)
        if len(free) != len(ex.gpus):
            return None, None
        gpu = min(free, key=free.get)
        sharing = math.ceil(ex.workers / len(ex.gpus))
        where = f"90% of GPU {gpu}'s free memory" + (
            f" shared by {sharing} packs at a time" if sharing > 1 else "")
        return MEMORY_HEADROOM * free[gpu] / sharing, where
    available = _host_available()
    if available is None:
        return None, None
    where = "90% of this host's available memory" + (
        f" shared by {ex.workers} packs at a time (--workers)" if ex.workers > 1 else "")
    return MEMORY_HEADROOM * available / ex.workers, where


def pack_jobs(cells, size, attempt=1):
    """The jobs of the cells still to run, packs of at most ``size`` cells: cells are packed
    together only when they share every setting but seed, sparsity, q* and V'
    (:func:`kerasparse.packed.packs`) and would start the same way (:func:`start_key`: all
    new, or all resuming from the same epoch). In the order of their first cell; packs of
    one cell run as ordinary ``kerasparse train`` cells. ``size`` 1: one job per cell."""
    if size == 1:
        return [Job([cell], attempt) for cell in cells]
    from kerasparse import packed

    kinds = {}
    for cell in cells:
        kinds.setdefault(start_key(cell.path), []).append(cell)
    jobs = []
    for group in kinds.values():
        for members in packed.packs([c.config for c in group], size):
            jobs.append(Job([group[i] for i in members], attempt))
    order = {c.name: i for i, c in enumerate(cells)}
    return sorted(jobs, key=lambda job: order[job.cells[0].name])


def check_packs(the_plan, size, ex, limit=None):
    """SweepError (one line, nothing written) unless every cell can be packed and every pack
    of the cells still to run fits in memory (``limit`` bytes, else what the local executor's
    device has free: see :func:`_memory_limit`)."""
    from kerasparse import packed

    for cell in the_plan.cells:
        reason = packed._unpackable(cell.config)
        if reason:
            where = f"cell {cell.name}: " if len(the_plan.cells) > 1 else ""
            raise SweepError(f"--pack {size}: {where}{reason}; run it with --pack 1")
    where = PACK_MEMORY_ENV if limit is not None else None
    if limit is None:
        limit, where = _memory_limit(ex)
        if limit is None:
            return
    todo = [c for c in the_plan.cells if cell_state(c.path) not in FINISHED]
    for job in pack_jobs(todo, size):
        if len(job.cells) > 1:
            try:
                packed.check_memory([c.config for c in job.cells], limit, where=where)
            except ks_config.ConfigError as exc:
                raise SweepError(f"--pack {size}: {exc}") from None


def _write_plan(the_plan, ex, pack=1):
    import kerasparse

    rundir.atomic_write_json(os.path.join(the_plan.out, PLAN_FILE), {
        "preset": None if the_plan.preset is None else os.path.abspath(str(the_plan.preset)),
        "grid": the_plan.grid,
        "seeds": the_plan.seeds,
        "sets": the_plan.sets,
        "backend": the_plan.backend,
        "executor": ex.name,
        "pack": pack,
        "cells": [c.name for c in the_plan.cells],
        "kerasparse": kerasparse.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })


class _Driver:
    """Submits jobs, retries failed cells, records failures, shows progress."""

    def __init__(self, the_plan, ex, retries, faults, console, pack=1, memory_limit=None):
        self.plan = the_plan
        self.pack = pack
        self.memory_limit = memory_limit
        self.packs = 0  # packs submitted so far (their number in the table's "where")
        self.ex = ex
        self.retries = retries
        self.faults = faults
        self.console = console
        self.sigints = 0
        self.cells = {c.name: c for c in the_plan.cells}
        self.index = {c.name: i for i, c in enumerate(the_plan.cells, 1)}
        self.records = {c.name: {"cell": c.name, "path": c.path, "status": "queued",
                                 "attempts": [], "error": None, "where": "", "epoch": 0,
                                 "best": None, "log": self._log(c)} for c in the_plan.cells}
        self.jobs = {}  # id(job) -> job, submitted and not finished

    @staticmethod
    def _log(cell):
        return os.path.join(os.path.dirname(cell.path), LOGS, cell.name + ".log")

    # -- events
    def say(self, cell, text):
        if self.console is not None:
            self.console.print(f"[{self.index[cell]}/{len(self.cells)}] {cell}: {text}",
                               highlight=False, markup=False, soft_wrap=True)

    def _on_sigint(self, signum, frame):
        self.sigints += 1

    def run(self):
        queue = deque()
        todo = []
        for cell in self.plan.cells:
            state = cell_state(cell.path)
            record = self.records[cell.name]
            if state in FINISHED:
                record["status"] = f"skipped ({state})"
                record["best"] = _best(cell.path)
                self.say(cell.name, f"{state}, skipped")
            else:
                if state == "resumable":
                    self.say(cell.name, "interrupted earlier, will resume from its checkpoint")
                todo.append(cell)
        queue.extend(pack_jobs(todo, self.pack))
        if self.console is not None:
            packs = sum(len(job.cells) > 1 for job in queue)
            self.console.print(f"sweep {self.plan.out}: {len(self.cells)} cells, "
                               f"{len(todo)} to run"
                               f"{f' ({packs} packs)' if self.pack > 1 else ''}; "
                               f"{self.ex.describe()}",
                               highlight=False, markup=False, soft_wrap=True)
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if in_main else None
        stopped = killed = False
        live = None
        try:
            if self.console is not None:
                from rich.live import Live

                live = Live(self.render(), console=self.console, refresh_per_second=2,
                            transient=False)
                live.start()
            last_poll = 0.0
            while (queue and not stopped) or self.ex.busy():
                if self.sigints and not stopped:
                    stopped = True
                    if self.console is not None:
                        self.console.print("Interrupted: the running cells stop after their "
                                           "current batch (Ctrl-C again to stop them at once)",
                                           soft_wrap=True)
                    self.ex.interrupt()
                if self.sigints > 1 and not killed:
                    killed = True
                    self.ex.kill()
                while queue and not stopped and self.ex.slots() > 0:
                    self.submit(queue.popleft())
                for job, results, exc in self.ex.wait(0.5):
                    self.finish(job, results, exc, queue, stopped)
                if time.time() - last_poll > 1.0:
                    last_poll = time.time()
                    self.poll()
                    if live is not None:
                        live.update(self.render())
            for job in queue:  # left over after Ctrl-C
                for cell in job.cells:
                    self.records[cell.name]["status"] = "not run"
        finally:
            if live is not None:
                live.update(self.render())
                live.stop()
                if not self.console.is_terminal:
                    self.console.line()  # Live leaves its last line open off a terminal
            if in_main:
                signal.signal(signal.SIGINT, previous)
        return [self.records[c.name] for c in self.plan.cells], stopped

    def submit(self, job):
        spec = {
            "cells": [dataclasses.asdict(c) for c in job.cells],
            "backend": self.plan.backend,
            "attempt": job.attempt,
            "cwd": os.getcwd(),
            "faults": {}, "worker_faults": [],
            "pack": self.pack > 1, "memory_limit": self.memory_limit,
        }
        for fault, pattern, attempts in self.faults:
            for cell in job.cells:
                if job.attempt in attempts and fnmatch.fnmatchcase(cell.name, pattern):
                    if fault == "worker":
                        spec["worker_faults"].append(cell.name)
                    else:
                        spec["faults"][cell.name] = fault
        where = self.ex.submit(job, spec)
        self.jobs[id(job)] = job
        packed = self.pack > 1 and len(job.cells) > 1
        if packed:
            self.packs += 1
        for cell in job.cells:
            record = self.records[cell.name]
            record["where"] = f"{where}, pack {self.packs}" if packed else where
            record["status"] = "starting" if self.ex.name == "ray" else "running"
            record["submitted"] = time.time()
            if job.attempt == 1:
                self.say(cell.name, f"started ({where}; pack {self.packs} of {len(job.cells)} "
                                    "cells)" if packed else f"started ({where})")

    def poll(self):
        for job in list(self.jobs.values()):
            started = self.ex.has_started(job)
            for cell in job.cells:
                record = self.records[cell.name]
                if record["status"] in ("starting", "running"):
                    record["status"] = "running" if started else "starting"
                    record["epoch"] = _epochs_done(cell.path)

    def finish(self, job, results, exc, queue, stopped):
        self.jobs.pop(id(job), None)
        by_cell = {r["cell"]: r for r in results or []}
        again = []
        for cell in job.cells:
            record = self.records[cell.name]
            result = by_cell.get(cell.name) or {
                "cell": cell.name, "returncode": None, "host": None,
                "error": f"the worker running it died ({_first_line(exc)})" if exc else "no result",
            }
            result["attempt"] = job.attempt
            if result.get("log"):
                record["log"] = result["log"]
            record["attempts"].append({k: result.get(k) for k in (
                "attempt", "returncode", "error", "host", "started", "finished", "command")})
            state = cell_state(cell.path)
            record["epoch"] = _epochs_done(cell.path)
            if state in FINISHED:
                record["status"], record["error"] = state, None
                record["best"] = _best(cell.path)
                failed_file = cell.path + ".failed.json"
                if os.path.exists(failed_file):
                    os.unlink(failed_file)  # an earlier sweep's failure, now superseded
                best = "-" if record["best"] is None else f"{record['best']:.4f}"
                self.say(cell.name, f"{state} (best test accuracy {best})")
                continue
            record["error"] = result["error"]
            if stopped:
                record["status"] = "interrupted"
                self.say(cell.name, "interrupted; a re-run resumes it")
                continue
            if result["returncode"] != USAGE_EXIT and job.attempt <= self.retries:
                again.append(cell)
                record["status"] = "retrying"
                self.say(cell.name, f"failed ({result['error']}); retrying, attempt "
                                    f"{job.attempt + 1} of {self.retries + 1}")
                continue
            record["status"] = "failed"
            self._write_failed(cell, record, result)
            self.say(cell.name, f"failed: {result['error']}")
        if again:  # in packs again where they pack (a killed pack resumes as one)
            queue.extendleft(reversed(pack_jobs(again, self.pack, job.attempt + 1)))

    def _write_failed(self, cell, record, result):
        rundir.atomic_write_json(cell.path + ".failed.json", {
            "cell": cell.name,
            "status": "failed",
            "returncode": result.get("returncode"),
            "error": result.get("error"),
            "command": result.get("command"),
            "host": result.get("host"),
            "log": record["log"],
            "attempts": record["attempts"],
        })

    def render(self):
        from rich.table import Table

        records = [self.records[c.name] for c in self.plan.cells]
        counts = {}
        for record in records:
            key = "skipped" if record["status"].startswith("skipped") else record["status"]
            counts[key] = counts.get(key, 0) + 1
        title = f"sweep {self.plan.out}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
        shown = records
        if len(records) > 40:  # big grids: the cells that are doing something
            shown = [r for r in records if r["status"] in (
                "running", "starting", "retrying", "failed", "interrupted")]
        table = Table(title=title, title_justify="left")
        for column in ("cell", "status", "epoch", "best test acc", "attempt", "where"):
            table.add_column(column)
        for record in shown:
            epochs = self.cells[record["cell"]].config["epochs"]
            table.add_row(
                record["cell"], record["status"], f"{record['epoch']}/{epochs}",
                "-" if record["best"] is None else f"{record['best']:.4f}",
                str(max(1, len(record["attempts"]))), record["where"],
            )
        return table


def _epochs_done(path):
    try:
        with open(os.path.join(path, "history.csv"), "rb") as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except OSError:
        return 0


def _best(path):
    summary = _read_json(os.path.join(path, "summary.json"))
    value = summary.get("best_test_accuracy") if isinstance(summary, dict) else None
    return value if isinstance(value, float) else None


# ---------------------------------------------------------------------------------------------
# The table (Dent & Tanner 2026, Table 1 style), from the run directories alone


def aggregate(the_plan):
    """One row per grid point: how many runs finished, diverged or failed, the median over
    seeds of the best test accuracy and the measured sparsity (summary.json's
    ``measured_sparsity``: the fraction of zero hidden activations at the last epoch, for any
    activation) of the finished (completed or diverged) runs."""
    keys = the_plan.keys
    groups = {}
    for cell in the_plan.cells:
        groups.setdefault(tuple(cell.point[k] for k in keys), []).append(cell)
    rows = []
    for key, cells in groups.items():
        accs, finals, sparsities, states = [], [], [], []
        for cell in cells:
            state = cell_state(cell.path)
            if state in FINISHED:
                try:
                    row = report.run_row(cell.path)
                except (rundir.RunDirError, OSError, ValueError):
                    state = "unreadable"
                else:
                    accs.append(row["best_test_accuracy"])
                    finals.append(row["final_test_accuracy"])
                    sparsities.append(row["measured_sparsity"])
            elif os.path.exists(cell.path + ".failed.json"):
                state = "failed"
            states.append(state)
        rows.append({
            **dict(zip(keys, key)),
            "runs": len(cells),
            "completed": states.count("completed"),
            "diverged": states.count("diverged"),
            "failed": states.count("failed"),
            "median_best_test_accuracy": report.median(accs),
            "median_final_test_accuracy": report.median(finals),
            "measured_sparsity": report.median(sparsities),
        })
    return rows


# ---------------------------------------------------------------------------------------------
# Dent & Tanner's Table 1 layout: rows s x V'(q*), columns q* (median test accuracy, sparsity)

TABLE1_KEYS = ("sparsity", "v_prime", "q_star")
STAT_KEYS = ("runs", "completed", "diverged", "failed", "median_best_test_accuracy",
             "median_final_test_accuracy", "measured_sparsity")


def has_table1_grid(keys):
    """Whether a grid over ``keys`` is over sparsity x V'(q*) x q* (Dent & Tanner Tables 1,
    2, 4), so that :func:`table1` can lay it out."""
    return set(TABLE1_KEYS) <= set(keys)


def table1(rows):
    """The aggregate rows (:func:`aggregate`, or sweep.json) in the layout of Dent & Tanner
    2026 Tables 1, 2 and 4: one table per combination of any other grid keys, each with rows
    (s, V'(q*)) in ascending order and, per q*, the median over seeds of the **final** test
    accuracy (the paper reports the final results on the test part) and the measured sparsity.

    Returns ``[{"other": {key: value}, "q_star": [q...], "rows": [{"sparsity", "v_prime",
    "cells": {q: {"accuracy", "sparsity", "runs", "finished"}}}]}]``.

    Raises:
        ValueError: the rows are not over sparsity x v_prime x q_star.
    """
    keys = [k for k in (rows[0] if rows else {}) if k not in STAT_KEYS]
    if not rows or not has_table1_grid(keys):
        raise ValueError(
            "the Table 1 layout needs a sweep whose grid is over sparsity, v_prime and q_star "
            f"(--grid sparsity=... --grid v_prime=... --grid q_star=...). Received: grid keys "
            f"{', '.join(keys) or 'none'}")
    others = [k for k in keys if k not in TABLE1_KEYS]
    tables = {}
    for row in rows:
        other = tuple(row[k] for k in others)
        table = tables.setdefault(other, {})
        cells = table.setdefault((row["sparsity"], row["v_prime"]), {})
        cells[row["q_star"]] = {
            "accuracy": row.get("median_final_test_accuracy"),
            "sparsity": row.get("measured_sparsity"),
            "runs": row.get("runs"),
            "finished": (row.get("completed") or 0) + (row.get("diverged") or 0),
        }
    out = []
    for other, table in tables.items():
        qs = sorted({q for cells in table.values() for q in cells})
        out.append({
            "other": dict(zip(others, other)),
            "q_star": qs,
            "rows": [{"sparsity": s, "v_prime": v, "cells": table[(s, v)]}
                     for s, v in sorted(table)],
        })
    return out


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def format_table1(tables):
    """Plain-text (Markdown) tables of :func:`table1`, each under 80 columns for three q*:
    ``| s | V'(q*) | q*=1 acc | q*=1 sparsity | ... |``; a cell with fewer finished runs than
    planned shows ``acc (k/n)``."""
    lines = []
    for t in tables:
        if t["other"]:
            lines.append(", ".join(f"{k}={v}" for k, v in t["other"].items()))
        head = ["s", "V'(q*)"]
        for q in t["q_star"]:
            head += [f"q*={q:g} acc", "sparsity"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(" --- " if i < 2 else " ---: " for i in range(len(head)))
                     + "|")
        for row in t["rows"]:
            cells = [f"{row['sparsity']:g}", f"{row['v_prime']:g}"]
            for q in t["q_star"]:
                c = row["cells"].get(q)
                if c is None:
                    cells += ["", ""]
                    continue
                acc = _fmt(c["accuracy"])
                if c["finished"] != c["runs"]:
                    acc += f" ({c['finished']}/{c['runs']})"
                cells += [acc, _fmt(c["sparsity"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


TABLE1_FILE = "sweep-table1.md"


def read_table_rows(out):
    """The aggregate rows a finished (or interrupted) sweep wrote to ``<out>/sweep.json``."""
    path = os.path.join(out, "sweep.json")
    if not os.path.isfile(path):
        raise rundir.RunDirError(f"{out!r} is not a sweep directory (no sweep.json; run "
                                 "kerasparse sweep ... --out there first)")
    try:
        rows = rundir.read_json(path)
    except (OSError, ValueError) as exc:  # ValueError: JSON syntax, not UTF-8
        raise rundir.RunDirError(f"{path} cannot be read ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise rundir.RunDirError(f"{path} is damaged (expected a list of table rows)")
    return rows


def write_table(out, rows):
    import csv

    fields = list(rows[0]) if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    rundir.atomic_write_text(os.path.join(out, "sweep.csv"), buf.getvalue())
    rundir.atomic_write_json(os.path.join(out, "sweep.json"), rows)
    if rows and has_table1_grid(k for k in rows[0] if k not in STAT_KEYS):
        rundir.atomic_write_text(os.path.join(out, TABLE1_FILE), format_table1(table1(rows)))


def print_table(rows, out, console):
    from rich.table import Table

    fields = list(rows[0]) if rows else []
    table = Table(title=f"sweep {out}")
    for field in fields:
        table.add_column(field)
    for row in rows:
        table.add_row(*("-" if row[f] is None else f"{row[f]:.4f}" if isinstance(row[f], float)
                        else str(row[f]) for f in fields))
    console.print(table)
    if rows and has_table1_grid(k for k in rows[0] if k not in STAT_KEYS):
        console.print(f"Dent & Tanner Table 1 layout (median final test accuracy, measured "
                      f"sparsity; {os.path.join(out, TABLE1_FILE)}):", highlight=False,
                      markup=False)
        console.print(format_table1(table1(rows)), highlight=False, markup=False,
                      soft_wrap=True)
