"""``kerasparse info``: versions, and the devices each installed backend sees.

Keras fixes one backend per process, so without ``--backend`` each installed backend is asked
in its own subprocess (``kerasparse info --backend NAME --json``).
"""

import importlib.util
import json
import os
import subprocess
import sys
from typing import Annotated

import typer

from kerasparse.cli._app import (
    BACKEND_MODULES,
    BackendOption,
    UsageError,
    app,
    console,
    fail,
    use_backend,
)


def _one(name):
    """This process's backend: the report dict (kerasparse.devices.report + versions)."""
    import keras

    import kerasparse
    from kerasparse import devices

    out = {"kerasparse": kerasparse.__version__, "keras": keras.__version__}
    out.update(devices.report(name))
    return out


def _ask(name):
    env = dict(os.environ, KERAS_BACKEND=name, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "kerasparse.cli", "info", "--backend", name, "--json"],
            capture_output=True, text=True, env=env, timeout=600,
        )
    except subprocess.TimeoutExpired:
        return {"backend": name, "error": "no answer within 600 s"}
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return {"backend": name, "error": lines[-1] if lines else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _print(report):
    if "error" in report:
        console.print(f"{report['backend']}: could not start ({report['error']})",
                      highlight=False, markup=False)
        return
    devices = ", ".join(
        d["name"] if d["kind"] == "cpu" else f"{d['kind']}: {d['name']}"
        for d in report["devices"])
    console.print(
        f"{report['backend']} {report['version']} ({report['build']}): sees {devices}; "
        f"Keras computes on {report['keras_device']}", highlight=False, markup=False)


@app.command()
def info(
    backend: BackendOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Show versions and the devices each installed backend sees (--backend: only that one,
    in this process)."""
    if backend is not None:
        try:
            name = use_backend(backend)
        except UsageError as exc:
            fail(str(exc))
        report = _one(name)
        if as_json:
            print(json.dumps(report))
            return
        console.print(f"kerasparse {report['kerasparse']}, keras {report['keras']}",
                      highlight=False, markup=False)
        _print(report)
        return
    import kerasparse

    installed = [b for b, module in BACKEND_MODULES.items()
                 if importlib.util.find_spec(module) is not None]
    reports = []
    for name in BACKEND_MODULES:
        if name in installed:
            reports.append(_ask(name))
        else:
            reports.append({"backend": name, "error": "not installed (pip install "
                                                      f"'kerasparse[{name}]')"})
    if as_json:
        print(json.dumps(reports))
        return
    console.print(f"kerasparse {kerasparse.__version__}", highlight=False, markup=False)
    for report in reports:
        _print(report)
