"""``kerasparse info`` (issue 11): the devices a backend sees, in this process (--backend) and
asked of a subprocess (what `kerasparse info` does for each installed backend)."""

import json

from typer.testing import CliRunner

from conftest import BACKEND
from kerasparse.cli import app, info_cmd

runner = CliRunner()


def _check(report):
    assert report["backend"] == BACKEND and report["version"]
    kinds = {d["kind"] for d in report["devices"]}
    assert "cpu" in kinds or "gpu" in kinds
    if report["cuda_build"] is False:
        assert "gpu" not in kinds and report["keras_device"] == "cpu"
    assert report["keras_device"] == "cpu" or report["keras_device"].startswith("gpu: ")


def test_info_for_this_backend_in_process():
    result = runner.invoke(app, ["info", "--backend", BACKEND, "--json"])
    assert result.exit_code == 0, result.output
    _check(json.loads(result.output.strip().splitlines()[-1]))
    text = runner.invoke(app, ["info", "--backend", BACKEND]).output
    assert f"{BACKEND} " in text and "Keras computes on" in text


def test_info_asks_each_backend_in_its_own_process():
    _check(info_cmd._ask(BACKEND))
