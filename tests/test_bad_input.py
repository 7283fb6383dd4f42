"""Bad input on the command line: one clear line naming the value, exit code 2, no traceback,
nothing written. The table below is mirrored in docs/bad-input.md."""

import os

import pytest
from typer.testing import CliRunner

from kerasparse.cli import app

runner = CliRunner()

BAD_TOML_SYNTAX = 'model = "wrn16-1"\nepochs = = 3\n'

# (id, train arguments (OUT is replaced by a fresh path), preset text or None, expected text)
TRAIN_CASES = [
    ("epochs-zero", ["--epochs", "0"], None, "epochs must be a number in [1, inf)"),
    ("epochs-not-int", ["--epochs", "ten"], None, "Invalid value for '--epochs'"),
    ("lr-negative", ["--lr", "-0.1"], None, "lr must be a number in (0, inf)"),
    ("batch-size-zero", ["--batch-size", "0"], None, "batch_size must be a number in [1, inf)"),
    ("controller-unknown", ["--controller", "multi"], None, "'multi' is not one of"),
    ("model-unknown", ["--model", "wrn28-5"], None, "Did you mean 'wrn28-4'"),
    ("dataset-unknown", ["--dataset", "cifar11"], None, "Did you mean 'cifar10'"),
    ("backend-unknown", ["--backend", "jaxx"], None, "'jaxx' is not one of"),
    ("keep-ratio-zero", ["--keep-ratio", "0"], None, "keep_ratio must be a number in (0, 1]"),
    ("keep-ratio-above-one", ["--keep-ratio", "1.5"], None, "keep_ratio must be a number"),
    ("factor-one", ["--factor", "1"], None, "factor must be a number in (0, 1)"),
    ("smoothing-one", ["--smoothing", "1"], None, "smoothing must be a number in [0, 1)"),
    ("step-zero", ["--step", "0"], None, "step must be a number in (0, 1]"),
    ("gap-negative", ["--gap", "-0.2"], None, "gap must be a number in (0, inf)"),
    ("sparsity-above-one", ["--sparsity", "1.2"], None, "sparsity must be a number in (0, 1)"),
    ("q-star-negative", ["--q-star", "-1"], None, "q_star must be a number in (0, inf)"),
    ("v-prime-one", ["--v-prime", "1"], None, "v_prime must be a number in (0, 1)"),
    ("validation-split-one", ["--validation-split", "1"], None, "validation_split must be"),
    ("min-above-max", ["--min-keep-ratio", "0.9", "--max-keep-ratio", "0.5"], None,
     "min_keep_ratio must not exceed max_keep_ratio"),
    ("set-unknown-key", ["--set", "epoch=3"], None, "unknown key 'epoch'. Did you mean 'epochs'"),
    ("set-wrong-type", ["--set", "epochs=ten"], None, "epochs must be an integer"),
    ("set-bool-type", ["--set", "nesterov=maybe"], None, "nesterov must be true or false"),
    ("set-no-equals", ["--set", "epochs"], None, "expected key=value"),
    ("activation-unknown", ["--activation", "crelo"], None, "Did you mean 'crelu'"),
    ("missing-out", ["--no-out"], None, "--out DIR is required"),
    ("config-missing", ["--config", "MISSING"], None, "config file not found"),
    ("config-syntax", ["--config", "PRESET"], BAD_TOML_SYNTAX, "line 2"),
    ("config-unknown-key", ["--config", "PRESET"], "epochz = 3\n", "Did you mean 'epochs'"),
    ("config-wrong-type", ["--config", "PRESET"], 'epochs = "10"\n', "epochs must be an integer"),
    ("config-out-of-range", ["--config", "PRESET"], "lr = 0.0\n", "lr must be a number in (0, inf)"),
    ("config-table", ["--config", "PRESET"], "[model]\nname = 'x'\n", "tables are not used"),
    ("files-dir-empty", ["--dataset", "mnist", "--files-dir", "EMPTY"], None, "EMPTY"),
    ("precision-unknown", ["--precision", "float16"], None, "'float16' is not one of"),
    ("devices-zero", ["--devices", "0"], None, "devices must be a number in [1, inf)"),
    # torch: not supported yet; jax/tensorflow: more than the visible devices. Both name it.
    ("devices-too-many", ["--devices", "64", "--batch-size", "64"], None, "Received: devices=64"),
    ("devices-uneven-batch", ["--devices", "3", "--batch-size", "128"], None,
     "batch_size must be a multiple of devices"),
    ("data-format-unknown", ["--data-format", "nchw"], None, "'nchw' is not one of"),
    ("data-format-not-wrn", ["--model", "mlp100x300", "--data-format", "channels_first"], None,
     "data_format applies to the WRN models only"),
    ("jit-compile-unknown", ["--jit-compile", "maybe"], None, "'maybe' is not one of"),
    ("set-jit-compile-unknown", ["--set", "jit_compile=sometimes"], None,
     "jit_compile must be one of auto, true, false"),
    ("steps-per-execution-zero", ["--steps-per-execution", "0"], None,
     "steps_per_execution must be a number in [1, inf)"),
    ("config-steps-per-execution", ["--config", "PRESET"], "steps_per_execution = 1.5\n",
     "steps_per_execution must be an integer"),
]


def _run(args, tmp_path, preset_text=None):
    out = tmp_path / "run"
    argv = ["train"]
    for arg in args:
        if arg == "--no-out":
            continue
        if arg == "MISSING":
            arg = str(tmp_path / "missing.toml")
        elif arg == "PRESET":
            preset = tmp_path / "preset.toml"
            preset.write_text(preset_text)
            arg = str(preset)
        elif arg == "EMPTY":
            empty = tmp_path / "empty"
            empty.mkdir()
            arg = str(empty)
        argv.append(arg)
    if "--no-out" not in args:
        argv += ["--out", str(out)]
    argv += ["--model", "wrn16-1"] if "--model" not in args else []
    argv += ["--dataset", "embedded"] if "--dataset" not in args else []
    return runner.invoke(app, argv), out


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input(case, tmp_path):
    _, args, preset_text, expected = case
    if "EMPTY" in args:
        expected = str(tmp_path / "empty")
    result, out = _run(args, tmp_path, preset_text)
    text = " ".join(result.output.split())  # rich may wrap long lines
    assert result.exit_code == 2, text
    assert expected in text
    assert "Traceback" not in text
    assert not out.exists(), "a refused run must not create its directory"


def test_existing_run_directory_is_refused_and_untouched(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text('{"status": "completed"}')
    result = runner.invoke(app, ["train", "--model", "wrn16-1", "--dataset", "embedded",
                                 "--out", str(out)])
    assert result.exit_code == 2
    assert "already exists" in " ".join(result.output.split())
    assert (out / "summary.json").read_text() == '{"status": "completed"}'


def test_resume_needs_a_run_directory(tmp_path):
    result = runner.invoke(app, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert "no config.json" in " ".join(result.output.split())


def test_resume_refuses_other_options(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = runner.invoke(app, ["train", "--resume", str(tmp_path), "--epochs", "3"])
    assert result.exit_code == 2
    assert "drop the other options" in " ".join(result.output.split())


def test_report_rejects_a_non_run_directory(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a kerasparse run directory" in " ".join(result.output.split())


def test_sweep_rejects_a_bad_grid(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('model = "wrn16-1"\n')
    result = runner.invoke(app, ["sweep", str(preset), "--grid", "sparsity=0.8,1.5",
                                 "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "sparsity must be a number in (0, 1)" in " ".join(result.output.split())
    assert not (tmp_path / "s").exists()


def test_missing_backend_names_the_extra(monkeypatch):
    import importlib.util

    from kerasparse.cli import _app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(_app.UsageError, match=r"pip install 'kerasparse\[torch\]'"):
        _app.resolve_backend("torch")


def test_cases_table_is_documented():
    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "bad-input.md")
    text = open(doc).read()
    missing = [case[0] for case in TRAIN_CASES if f"`{case[0]}`" not in text]
    assert not missing, f"cases missing from docs/bad-input.md: {missing}"


# --- data sources and optional dependencies (issue 11) ---------------------------------------
# (id, train arguments; DIR is replaced by a folder made by the case's set-up, expected text)
DATA_CASES = [
    ("data-dir-unknown-layout", ["--dataset", "cifar10", "--data-dir", "DIR"],
     "data_dir (--data-dir) holds neither the cifar10 files (expected CIFAR-10 python batches (data_batch_1"),
    ("data-dir-other-dataset", ["--dataset", "cifar10", "--data-dir", "DIR"],
     "It holds: SVHN cropped-digit files (--dataset svhn_cropped)"),
    ("tfds-missing-for-svhn", ["--dataset", "svhn_cropped"],
     "Keras cannot download it and tensorflow-datasets is not installed; install it with "
     "pip install 'kerasparse[tfds]'"),
    ("tfds-missing-for-a-tfds-data-dir", ["--dataset", "cifar10", "--data-dir", "DIR"],
     "tensorflow-datasets is not installed; install it with pip install 'kerasparse[tfds]'"),
    ("files-dir-alias", ["--dataset", "mnist", "--files-dir", "DIR"],
     "files_dir (--files-dir) holds no mnist files: expected MNIST idx files"),
]


def _data_case_setup(case_id, folder, monkeypatch):
    from kerasparse.data import _sources

    folder.mkdir()
    if case_id == "data-dir-other-dataset":
        for name in ("train_32x32.mat", "test_32x32.mat"):
            (folder / name).write_bytes(b"")
    if case_id.startswith("tfds-missing"):
        monkeypatch.setattr(_sources, "tfds_installed", lambda: False)
    if case_id == "tfds-missing-for-a-tfds-data-dir":  # a prepared tfds copy, by its layout
        (folder / "cifar10" / "3.0.2").mkdir(parents=True)
        (folder / "cifar10" / "3.0.2" / "dataset_info.json").write_text("{}")


@pytest.mark.parametrize("case", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_data_source_bad_input(case, tmp_path, monkeypatch):
    case_id, args, expected = case
    folder = tmp_path / "data"
    _data_case_setup(case_id, folder, monkeypatch)
    out = tmp_path / "run"
    argv = ["train", "--model", "wrn16-1", "--out", str(out)]
    argv += [str(folder) if a == "DIR" else a for a in args]
    result = runner.invoke(app, argv)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert expected in text
    assert "Traceback" not in text and len(result.output.strip().splitlines()) <= 3
    assert not out.exists(), "a refused run must not create its directory"


def test_device_gpu_without_a_cuda_build_names_the_extra(tmp_path):
    from conftest import BACKEND

    from kerasparse import devices

    if devices.cuda_build(BACKEND)[0]:
        pytest.skip(f"{BACKEND} is a CUDA build here: the case cannot be produced")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", "wrn16-1", "--dataset", "embedded",
                                 "--device", "gpu", "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert f"the installed {BACKEND} is a" in text and "(no GPU support)" in text
    assert {"jax": "kerasparse[jax-cuda13]", "torch": "kerasparse[torch]",
            "tensorflow": "kerasparse[tensorflow-cuda]"}[BACKEND] in text
    assert "Traceback" not in text and not out.exists()


def test_data_cases_are_documented():
    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "bad-input.md")
    text = open(doc).read()
    missing = [case[0] for case in DATA_CASES if f"`{case[0]}`" not in text]
    assert not missing, f"cases missing from docs/bad-input.md: {missing}"
