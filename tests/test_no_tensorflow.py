"""Training without TensorFlow: `kerasparse train` (embedded data and the real MNIST files) and a
paper app run to completion in a subprocess where `tensorflow` and `tensorflow_datasets` cannot
be imported (a sitecustomize on PYTHONPATH hides them from every import finder, as if they were
not installed). On the tensorflow backend the same subprocess must refuse with the one-line
error naming the extra."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import BACKEND

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"

# Wraps every finder of sys.meta_path so that the blocked top-level packages are not found:
# `import tensorflow` raises ModuleNotFoundError and importlib.util.find_spec returns None,
# exactly as when the package is absent (raising from find_spec instead would break libraries
# that probe for TensorFlow, e.g. torch._dynamo).
BLOCKER = '''
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets")


class _Hide:
    def __init__(self, inner):
        self._inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            return None
        find = getattr(self._inner, "find_spec", None)
        return None if find is None else find(name, path, target)

    def __getattr__(self, name):
        return getattr(self._inner, name)


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("no_tensorflow")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    path = [str(folder), str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p]
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(path))
    # The blocker is active in that environment (else the tests below would prove nothing).
    probe = subprocess.run(
        [sys.executable, "-c",
         "import importlib.util as u, sys\n"
         "assert u.find_spec('tensorflow') is None and u.find_spec('tensorflow_datasets') is None\n"
         "for name in ('tensorflow', 'tensorflow_datasets'):\n"
         "    try:\n"
         "        __import__(name)\n"
         "    except ModuleNotFoundError:\n"
         "        continue\n"
         "    sys.exit(name + ' imported')\n"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    return env


def _run(env, *args, timeout=900):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _check_completed(result, out):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert summary["status"] == "completed"
    # train.versions records TensorFlow whenever it was loaded in the process.
    assert "tensorflow" not in summary["versions"], summary["versions"]
    return summary


TINY = ["--epochs", "1", "--batch-size", "32", "--train-examples", "64",
        "--set", "test_examples=64", "--quiet"]


@pytest.mark.skipif(BACKEND == "tensorflow", reason="the tensorflow backend is TensorFlow "
                    "(its refusal without TensorFlow is tested below)")
def test_kerasparse_train_without_tensorflow(env, tmp_path):
    out = tmp_path / "embedded"
    result = _run(env, "-m", "kerasparse.cli", "train", "--model", "wrn16-1", "--set",
                  "depth=10", "--dataset", "embedded", "--set", "monitor_batch=32", *TINY,
                  "--out", str(out))
    summary = _check_completed(result, out)
    assert summary["device"] == "cpu"


@pytest.mark.skipif(BACKEND == "tensorflow", reason="the tensorflow backend is TensorFlow")
@pytest.mark.skipif(not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason=f"the real MNIST files are not at {MNIST_DIR}")
def test_kerasparse_train_on_mnist_files_without_tensorflow(env, tmp_path):
    out = tmp_path / "mnist"
    result = _run(env, "-m", "kerasparse.cli", "train", "--model", "mlp100x300", "--set",
                  "depth=2", "--set", "width=32", "--dataset", "mnist", "--data-dir",
                  str(MNIST_DIR), *TINY, "--out", str(out))
    _check_completed(result, out)
    with open(out / "config.json") as f:
        assert json.load(f)["data_dir"] == str(MNIST_DIR)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="the tensorflow backend is TensorFlow")
def test_app_without_tensorflow(env, tmp_path):
    out = tmp_path / "app"
    result = _run(env, str(REPO / "apps" / "dent_tanner2026_eoc.py"), "--dataset", "embedded",
                  "--depth", "2", "--epochs", "1", "--steps-per-epoch", "2",
                  "--validation-split", "0.02", "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    with open(out / "summary.json") as f:
        assert json.load(f)["backend"] == BACKEND


def test_tensorflow_backend_without_tensorflow_names_the_extra(env, tmp_path):
    out = tmp_path / "tf"
    result = _run(env, "-m", "kerasparse.cli", "train", "--backend", "tensorflow", "--model",
                  "wrn16-1", "--dataset", "embedded", "--out", str(out), timeout=300)
    text = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stdout + result.stderr
    assert "backend 'tensorflow' is not installed" in text
    assert "pip install 'kerasparse[tensorflow]'" in text
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists()
