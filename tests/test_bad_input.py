"""Bad input on the command line: one clear line naming the value, exit code 2, no traceback,
nothing written. The table below is mirrored in docs/bad-input.md."""

import os

import pytest
from typer.testing import CliRunner

from kerasparse.cli import app

runner = CliRunner()

BAD_TOML_SYNTAX = 'model = "wrn16-1"\nepochs = = 3\n'
MLP = ["--model", "mlp100x300", "--set", "depth=2", "--set", "width=16"]

# (id, train arguments (OUT is replaced by a fresh path), preset text or None, expected text)
TRAIN_CASES = [
    ("epochs-zero", ["--epochs", "0"], None, "epochs must be a number in [1, 1000000]"),
    ("epochs-not-int", ["--epochs", "ten"], None, "Invalid value for '--epochs'"),
    ("lr-negative", ["--lr", "-0.1"], None, "lr must be a number in (0, inf)"),
    ("batch-size-zero", ["--batch-size", "0"], None, "batch_size must be a number in [1, 2147483647]"),
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
    # A controller key its controller does not read would be recorded in config.json unused.
    ("keep-ratio-without-constant", ["--keep-ratio", "0.3"], None,
     "keep_ratio is read by the constant controller only (--controller constant); controller "
     "'none' would ignore it. Received: keep_ratio=0.3"),
    ("step-with-mult", ["--controller", "mult", "--step", "0.05"], None,
     "step is read by the add controller only (--controller add); controller 'mult' would"),
    ("max-keep-ratio-with-constant", ["--controller", "constant", "--max-keep-ratio", "0.5"],
     None, "max_keep_ratio is read by the add and mult controllers only"),
    ("config-factor-without-controller", ["--config", "PRESET"], "factor = 0.9\n",
     "factor is read by the mult controller only"),
    ("momentum-with-adam", ["--optimizer", "adam", "--momentum", "0.5"], None,
     "momentum is read by the sgd optimizer only (--optimizer sgd); optimizer 'adam' would "
     "ignore it. Received: momentum=0.5, optimizer='adam'"),
    ("set-nesterov-with-adam", ["--set", "optimizer=adam", "--set", "nesterov=false"], None,
     "nesterov is read by the sgd optimizer only"),
    ("norm-on-an-mlp", ["--model", "mlp100x300", "--norm", "batchnorm"], None,
     "norm applies to the WRN models only (wrn28-4, wrn28-4-dense, wrn16-4, wrn28-10, "
     "wrn16-1); model 'mlp100x300' (DeepMLP) would ignore it. Received: norm='batchnorm'"),
    ("no-topk-on-a-cnn", ["--model", "cnn50x300", "--no-topk"], None,
     "topk applies to the WRN models only"),
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
    ("config-table", ["--config", "PRESET"], "[model]\nname = 'x'\n", "unknown model 'x'"),
    ("files-dir-empty", ["--dataset", "mnist", "--files-dir", "EMPTY"], None, "EMPTY"),
    ("precision-unknown", ["--precision", "float16"], None, "'float16' is not one of"),
    ("devices-zero", ["--devices", "0"], None, "devices must be a number in [1, 65536]"),
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
     "steps_per_execution must be a number in [1, 2147483647]"),
    ("config-steps-per-execution", ["--config", "PRESET"], "steps_per_execution = 1.5\n",
     "steps_per_execution must be an integer"),
    ("warmup-epochs-negative", ["--warmup-epochs", "-1"], None,
     "warmup_epochs must be a number in [0, inf)"),
    ("warmup-epochs-not-below-epochs", ["--epochs", "3", "--set", "warmup_epochs=3"], None,
     "warmup_epochs must be below epochs"),
    # --- issue 16: numbers at their type's limits, hostile presets, --out, data files -----
    ("epochs-int64-overflow", ["--epochs", str(2**63)], None,
     "epochs must be a number in [1, 1000000]. Received: epochs=9223372036854775808"),
    ("epochs-int64-max", ["--epochs", str(2**63 - 1)], None, "epochs must be a number in [1, 1000000]"),
    ("config-epochs-huge", ["--config", "PRESET"], "epochs = 10000000\n",
     "epochs must be a number in [1, 1000000]"),
    ("seed-2-pow-32", ["--seed", str(2**32)], None,
     "seed must be a number in [0, 4294967295]. Received: seed=4294967296"),
    ("seed-negative", ["--seed", "-1"], None, "seed must be a number in [0, 4294967295]"),
    ("config-seed-huge", ["--config", "PRESET"], "seed = 4294967296\n",
     "seed must be a number in [0, 4294967295]"),
    ("set-seed-huge", ["--set", f"seed={2**64}"], None, "seed must be a number in [0, 4294967295]"),
    ("config-seed-float", ["--config", "PRESET"], "seed = 1.5\n", "seed must be an integer"),
    ("batch-size-int32-overflow", ["--batch-size", str(2**31)], None,
     "batch_size must be a number in [1, 2147483647]"),
    ("steps-per-epoch-huge", ["--steps-per-epoch", str(2**63 - 1)], None,
     "steps_per_epoch must be a number in [1, 2147483647]"),
    ("steps-per-epoch-zero", ["--steps-per-epoch", "0"], None, "steps_per_epoch must be a number"),
    ("train-examples-zero", ["--train-examples", "0"], None, "train_examples must be a number"),
    ("set-test-examples-zero", ["--set", "test_examples=0"], None, "test_examples must be a number"),
    ("set-checkpoint-every-zero", ["--set", "checkpoint_every=0"], None,
     "checkpoint_every must be a number in [1, 2147483647]"),
    ("keep-checkpoints-negative", ["--keep-checkpoints", "-1"], None,
     "keep_checkpoints must be a number in [0, 2147483647]. Received: keep_checkpoints=-1"),
    ("callback-no-colon", ["--callback", "mylogging"], None,
     "callbacks must be module:factory items separated by commas. Received: "
     "callbacks='mylogging'"),
    # A user's callbacks are imported once the model is built (the backend is set): small MLP.
    ("callback-module-missing", [*MLP, "--callback", "no_such_module_xyz:make"], None,
     "callbacks: cannot import module 'no_such_module_xyz' (No module named "),
    ("callback-factory-missing", [*MLP, "--callback", "json:no_such_factory"], None,
     "callbacks: module 'json' has no callable 'no_such_factory'"),
    ("callback-not-a-callback", [*MLP, "--callback", "builtins:dict"], None,
     "callbacks: builtins:dict must return a keras.callbacks.Callback (or a list of them). "
     "Received: dict"),
    ("set-monitor-batch-negative", ["--set", "monitor_batch=-1"], None,
     "monitor_batch must be a number in [0, 2147483647]"),
    ("set-depth-huge", ["--set", f"depth={2**31}"], None, "depth must be a number in [1, 2147483647]"),
    ("devices-int64-max", ["--devices", str(2**63 - 1)], None, "devices must be a number in [1, 65536]"),
    ("lr-nan", ["--lr", "nan"], None, "lr must be a number. Received: lr=nan"),
    ("lr-inf", ["--lr", "inf"], None, "lr must be a number. Received: lr=inf"),
    ("keep-ratio-nan", ["--keep-ratio", "nan"], None, "keep_ratio must be a number"),
    ("config-lr-nan", ["--config", "PRESET"], "lr = nan\n", "lr must be a number. Received: lr=nan"),
    ("config-not-utf8", ["--config", "PRESET"], b"model = \"wrn16-1\"\nepochs = \xff\n",
     "not a UTF-8 text file"),
    ("config-utf16", ["--config", "PRESET"], "epochs = 3\n".encode("utf-16"), "not a UTF-8 text file"),
    ("config-binary", ["--config", "PRESET"], bytes(range(256)), "PRESET"),
    ("config-is-a-directory", ["--config", "EMPTY"], None, "config path is a directory"),
    ("monitor-not-logged", ["--controller", "mult", "--set", "monitor=val_accuracy"], None,
     "monitor must be a metric logged before the controller reads it: accuracy, loss "
     "(val_* need validation_split > 0). Received: monitor='val_accuracy'"),
    ("monitor-test-metric", ["--controller", "add", "--set", "monitor=test_accuracy"], None,
     "Received: monitor='test_accuracy'"),
    ("monitor-unknown", ["--controller", "mult", "--set", "monitor=acc"], None,
     "Received: monitor='acc'"),
    ("out-is-a-file", ["--out", "FILE"], None, "exists and is not a directory"),
    ("out-under-a-file", ["--out", "FILE/sub"], None, "which is a file, not a folder"),
    ("out-deep-under-a-file", ["--out", "FILE/a/b"], None, "which is a file, not a folder"),
    ("overwrite-not-a-run", ["--out", "USERDIR", "--overwrite"], None,
     "--overwrite refused: 'USERDIR' is not a kerasparse run directory"),
    ("overwrite-foreign-config-json", ["--out", "USERDIR:config.json={\"lr\": 1}", "--overwrite"],
     None, "is not a kerasparse run directory (no config.json written by kerasparse)"),
    ("overwrite-config-json-list", ["--out", "USERDIR:config.json=[1, 2]", "--overwrite"], None,
     "nothing was deleted"),
    ("overwrite-config-json-binary", ["--out", "USERDIR:config.json=\udcff", "--overwrite"], None,
     "nothing was deleted"),
    ("resume-and-overwrite", ["--no-out", "--resume", "USERDIR", "--overwrite"], None,
     "--resume and --overwrite exclude each other"),
    ("sparsity-on-a-wrn", ["--sparsity", "0.8"], None,
     "sparsity applies to the edge-of-chaos models only (mlp100x300, cnn50x300)"),
    ("q-star-on-a-wrn", ["--q-star", "3"], None, "q_star applies to the edge-of-chaos models only"),
    ("v-prime-on-a-wrn", ["--config", "PRESET"], "v_prime = 0.7\n",
     "v_prime applies to the edge-of-chaos models only"),
    ("mnist-labels-out-of-range", ["--dataset", "mnist", "--data-dir", "MNIST:labels"], None,
     "mnist training labels from"),
    ("mnist-gz-corrupt", ["--dataset", "mnist", "--data-dir", "MNIST:corrupt"], None,
     "cannot be read"),
    ("mnist-gz-truncated", ["--dataset", "mnist", "--data-dir", "MNIST:truncated"], None,
     "is it a corrupted download?"),
    ("split-unknown", ["--split", "random"], None, "'random' is not one of"),
    # 4 + 2 examples: 1 test, round(0.1 * 5) = 0 validation.
    ("split-leaves-part-empty", ["--dataset", "mnist", "--data-dir", "MNIST:none",
                                 "--split", "pooled"], None,
     "split='pooled' of 6 examples leaves the validation part empty"),
    ("tiny-imagenet-no-wnids", ["--dataset", "tiny_imagenet", "--data-dir", "TINY:wnids"],
     None, "It lacks wnids.txt"),
    ("tiny-imagenet-no-val-annotations", ["--dataset", "tiny_imagenet", "--data-dir",
                                          "TINY:annotations"], None,
     "It lacks val/val_annotations.txt"),
]


def _write_mnist(folder, damage):
    """Tiny MNIST idx .gz files (4 train, 2 test images); ``damage`` spoils one of them."""
    import gzip

    import numpy as np

    folder.mkdir()

    def idx(magic, array):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        return header + array.astype(np.uint8).tobytes()

    files = {
        "train-images-idx3-ubyte.gz": idx(2051, np.zeros((4, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx(2049, np.array([0, 1, 10 if damage == "labels" else 2, 3])),
        "t10k-images-idx3-ubyte.gz": idx(2051, np.zeros((2, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx(2049, np.array([0, 1])),
    }
    for name, raw in files.items():
        data = gzip.compress(raw)
        if name.startswith("t10k-images"):
            if damage == "corrupt":  # a valid gzip header, garbage deflate stream
                data = data[:10] + bytes(b ^ 0x5A for b in data[10:])
            elif damage == "truncated":
                data = data[: len(data) // 2]
        (folder / name).write_bytes(data)


def _write_tiny_imagenet(folder, damage):
    """A tiny-imagenet-200 folder (2 classes, one training and one val JPEG each) lacking
    ``wnids.txt`` or ``val/val_annotations.txt``."""
    from PIL import Image

    wnids = ["n01443537", "n02124075"]
    (folder / "val" / "images").mkdir(parents=True)
    for k, wnid in enumerate(wnids):
        (folder / "train" / wnid / "images").mkdir(parents=True)
        Image.new("RGB", (64, 64), (60 * k, 0, 0)).save(
            folder / "train" / wnid / "images" / f"{wnid}_0.JPEG")
        Image.new("RGB", (64, 64), (60 * k, 9, 0)).save(folder / "val" / "images" / f"v{k}.JPEG")
    if damage != "wnids":
        (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    if damage != "annotations":
        (folder / "val" / "val_annotations.txt").write_text(
            "".join(f"v{k}.JPEG\t{w}\t0\t0\t63\t63\n" for k, w in enumerate(wnids)))


def _placeholder(arg, tmp_path, preset_text):
    """Replace a placeholder argument by a path it creates (MISSING, PRESET, EMPTY, FILE[/..],
    USERDIR[:name=text], MNIST:damage); other arguments are returned as they are."""
    if arg == "MISSING":
        return str(tmp_path / "missing.toml")
    if arg == "PRESET":
        preset = tmp_path / "preset.toml"
        if isinstance(preset_text, bytes):
            preset.write_bytes(preset_text)
        else:
            preset.write_text(preset_text)
        return str(preset)
    if arg == "EMPTY":
        (tmp_path / "empty").mkdir()
        return str(tmp_path / "empty")
    if arg.startswith("FILE"):
        (tmp_path / "file.txt").write_text("a user's file\n")
        return str(tmp_path / "file.txt") + arg[4:]
    if arg.startswith("USERDIR"):
        folder = tmp_path / "results"
        folder.mkdir()
        (folder / "table.csv").write_text("a user's results\n")
        if ":" in arg:
            name, text = arg.split(":", 1)[1].split("=", 1)
            (folder / name).write_bytes(text.encode("utf-8", "surrogateescape"))
        return str(folder)
    if arg.startswith("MNIST:"):
        _write_mnist(tmp_path / "mnist", arg.split(":", 1)[1])
        return str(tmp_path / "mnist")
    if arg.startswith("TINY:"):
        _write_tiny_imagenet(tmp_path / "tiny-imagenet-200", arg.split(":", 1)[1])
        return str(tmp_path / "tiny-imagenet-200")
    return arg


def _run(args, tmp_path, preset_text=None):
    out = tmp_path / "run"
    argv = ["train"] + [_placeholder(a, tmp_path, preset_text) for a in args if a != "--no-out"]
    if "--no-out" not in args and "--out" not in args:
        argv += ["--out", str(out)]
    if "--resume" not in args:
        argv += ["--model", "wrn16-1"] if "--model" not in args else []
        argv += ["--dataset", "embedded"] if "--dataset" not in args else []
    return argv, out


def snapshot(root):
    """Every path under ``root`` with its bytes (directories as None): the before/after
    listing a refused command must leave unchanged."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def assert_one_line_error(result, code, expected):
    text = " ".join(result.output.split())  # rich may wrap long lines
    assert result.exit_code == code, text
    assert expected in text, text
    assert "Traceback" not in text and text.count("Error:") == 1, text
    return text


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input(case, tmp_path):
    _, args, preset_text, expected = case
    argv, out = _run(args, tmp_path, preset_text)
    if "EMPTY" in args:
        expected = str(tmp_path / "empty")
    expected = expected.replace("PRESET", str(tmp_path / "preset.toml"))
    expected = expected.replace("USERDIR", str(tmp_path / "results"))
    before = snapshot(tmp_path)
    result = runner.invoke(app, argv)
    assert_one_line_error(result, 2, expected)
    assert not out.exists(), "a refused run must not create its directory"
    assert snapshot(tmp_path) == before, "a refused run must not write or delete anything"


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
    result = runner.invoke(app, ["train", "--resume", str(tmp_path), "--lr", "0.5"])
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


# --- issue 16: damaged run directories, signals, a full disk --------------------------------
# One small run (an MLP on the embedded data, 2 epochs of 6 steps), trained in process; every
# case below works on a copy of it. The base run is stopped by SIGINT in epoch 2 (the fault
# hook of kerasparse.train), so it is resumable: 1 epoch done, checkpoint epoch-0001.
SMALL = ["--model", "mlp100x300", "--set", "depth=2", "--set", "width=16", "--dataset",
         "embedded", "--epochs", "2", "--train-examples", "192", "--batch-size", "32",
         "--set", "monitor_batch=0", "--set", "test_examples=32", "--quiet"]


def _train_in_process(argv, fault=""):
    saved = os.environ.get("KERASPARSE_FAULT")
    os.environ["KERASPARSE_FAULT"] = fault  # read when the run starts (interrupts.faults_armed)
    try:
        return runner.invoke(app, ["train", *argv])
    finally:
        if saved is None:
            os.environ.pop("KERASPARSE_FAULT", None)
        else:
            os.environ["KERASPARSE_FAULT"] = saved


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{'reference': an uninterrupted run, 'interrupted': the same run stopped by SIGINT
    during step 1 of epoch 2 (its last epoch)}."""
    root = tmp_path_factory.mktemp("runs")
    ref = _train_in_process([*SMALL, "--out", str(root / "reference")])
    assert ref.exit_code == 0, ref.output
    cut = _train_in_process([*SMALL, "--out", str(root / "interrupted")], fault="sigint:2:1")
    assert cut.exit_code == 130, cut.output
    return {"reference": root / "reference", "interrupted": root / "interrupted"}


def _json(path):
    import json

    with open(path) as f:
        return json.load(f)


def _history(path):
    import csv

    with open(path / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sigint_in_the_last_epoch_is_not_recorded_and_resumes_exactly(runs, tmp_path):
    """Issue 16: SIGINT during the last epoch: status interrupted (never completed), the cut
    epoch is not in history.csv nor checkpointed, and --resume gives the uninterrupted run's
    history and final weights (bit for bit on torch)."""
    import shutil

    import numpy as np

    from conftest import BACKEND, h5_arrays

    cut = tmp_path / "cut"
    shutil.copytree(runs["interrupted"], cut)
    summary = _json(cut / "summary.json")
    assert summary["status"] == "interrupted" and summary["epochs_done"] == 1
    assert [row["epoch"] for row in _history(cut)] == ["1"]
    assert _json(cut / "checkpoints" / "latest.json")["epoch"] == 1
    assert not (cut / "checkpoints" / "epoch-0002.weights.h5").exists()
    assert not (cut / "model.keras").exists()
    result = runner.invoke(app, ["train", "--quiet", "--resume", str(cut)])
    assert result.exit_code == 0, result.output
    assert _json(cut / "summary.json")["status"] == "completed"
    a, b = _history(runs["reference"]), _history(cut)
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b):
        for key in ("loss", "accuracy", "test_loss", "test_accuracy", "lr"):
            if BACKEND == "torch":
                assert ra[key] == rb[key], (key, ra, rb)
            else:
                assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-5, abs=1e-6), key
    wa = h5_arrays(runs["reference"] / "checkpoints" / "epoch-0002.weights.h5")
    wb = h5_arrays(cut / "checkpoints" / "epoch-0002.weights.h5")
    assert wa.keys() == wb.keys() and any(k.startswith("optimizer/") for k in wa)
    for name in wa:
        if BACKEND == "torch":
            assert np.array_equal(wa[name], wb[name]), name
        else:
            np.testing.assert_allclose(wa[name], wb[name], rtol=1e-5, atol=1e-6)


def test_a_run_saved_with_an_unread_controller_key_still_resolves(tmp_path):
    """Before `_check_controller_keys`, ``--keep-ratio 0.3`` without ``--controller constant``
    was accepted and recorded. A new run with it is refused; the saved run resumes as it ran
    (controller none: no controller built), and the same dict as new input is refused."""
    import json

    from kerasparse import config as ks_config
    from kerasparse import train

    saved = {**ks_config.default_config(), "keep_ratio": 0.3, "backend": "torch"}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = train.saved_config(str(tmp_path))
    assert (config["controller"], config["keep_ratio"]) == ("none", 0.3)
    assert train.build_controller(config) is None
    with pytest.raises(ks_config.ConfigError, match="keep_ratio is read by the constant"):
        ks_config.resolve(overrides={k: v for k, v in saved.items() if k != "backend"})


def test_older_npz_checkpoint_resumes_exactly(runs, tmp_path):
    """A checkpoint in the older format (epoch-0001.npz: every variable in order, as
    kerasparse wrote them before and train-pack members still do) resumes with a one-line
    note and gives the uninterrupted run."""
    import shutil

    from kerasparse import checkpoint, train

    cut = tmp_path / "cut"
    shutil.copytree(runs["interrupted"], cut)
    config = train.saved_config(str(cut))
    _, model, _ = train._setup(config)
    train.compile_model(model, config, 6)
    model.optimizer.build(model.trainable_variables)
    assert train.RunRecord(str(cut), config, None).load_checkpoint(model) == 1
    import keras

    arrays = [keras.ops.convert_to_numpy(v) for v in checkpoint.all_variables(model)]
    _npz_with({f"v{i:05d}": a for i, a in enumerate(arrays)})(cut)
    (cut / CKPT).unlink()
    result = runner.invoke(app, ["train", "--quiet", "--resume", str(cut)])
    assert result.exit_code == 0, result.output
    assert "epoch-0001.npz is an older index-ordered checkpoint" in " ".join(result.output.split())
    a, b = _history(runs["reference"]), _history(cut)
    assert [float(r["loss"]) for r in a] == pytest.approx([float(r["loss"]) for r in b],
                                                          rel=1e-6)
    assert os.path.exists(cut / "checkpoints" / "epoch-0002.weights.h5")


def test_sigterm_stops_like_sigint(tmp_path):
    out = tmp_path / "term"
    result = _train_in_process([*SMALL, "--out", str(out)], fault="sigterm:1:2")
    assert result.exit_code == 128 + 15, result.output
    assert "Traceback" not in result.output
    summary = _json(out / "summary.json")
    assert summary["status"] == "interrupted" and summary["epochs_done"] == 0
    assert not (out / "checkpoints").exists() and not (out / "history.csv").exists()


def test_signal_during_start_up_stops_cleanly(tmp_path, monkeypatch):
    import signal

    from kerasparse import train

    real_setup = train._setup

    def setup_then_signal(config):
        result = real_setup(config)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the model is being built
        return result

    monkeypatch.setattr(train, "_setup", setup_then_signal)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMALL, "--out", str(out)])
    assert_one_line_error(result, 130, "interrupted (SIGINT) during start-up")
    assert not out.exists()


def test_broken_install_is_one_line(tmp_path, monkeypatch):
    """An ImportError from inside the backend (simulated: a compiled module missing) is one
    line naming the module, exit 1 (a fault, not a usage error), nothing written."""
    from kerasparse import train

    def broken(config):
        raise ImportError("libfoo.so: cannot open shared object file", name="jaxlib._jax")

    monkeypatch.setattr(train, "_setup", broken)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMALL, "--out", str(out)])
    assert_one_line_error(result, 1, "cannot import jaxlib._jax (libfoo.so: cannot open shared "
                                     "object file); the installation is broken")
    assert not out.exists()


def test_download_import_error_is_not_called_offline(monkeypatch):
    from kerasparse.data import _sources

    def missing(module, kwargs):
        raise ImportError("No module named 'requests'", name="requests")

    monkeypatch.setattr(_sources, "_keras_load_data", missing)
    with pytest.raises(_sources.DownloadError) as info:
        _sources.download("cifar10")
    text = str(info.value)
    assert "a module it needs is missing (No module named 'requests')" in text
    assert "Offline" not in text


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(runs, tmp_path):
    """A checkpoint write that fails (ENOSPC, simulated) stops the run with one line saying
    the previous checkpoint is intact; nothing half-written stays; --resume then finishes it
    exactly."""
    out = tmp_path / "full"
    result = _train_in_process([*SMALL, "--out", str(out)], fault="diskfull:2")
    assert_one_line_error(
        result, 1, "cannot write the checkpoint of epoch 2 in "
        f"{out} (No space left on device); the checkpoint of epoch 1 is intact")
    assert sorted(os.listdir(out / "checkpoints")) == [
        "epoch-0001.json", "epoch-0001.weights.h5", "latest.json"]  # no .tmp-* left behind
    assert _json(out / "checkpoints" / "latest.json")["epoch"] == 1
    assert [row["epoch"] for row in _history(out)] == ["1"]  # not a row ahead
    assert not (out / "summary.json").exists()  # never recorded as completed
    resumed = runner.invoke(app, ["train", "--quiet", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    a, b = _history(runs["reference"]), _history(out)
    assert [float(r["loss"]) for r in a] == pytest.approx([float(r["loss"]) for r in b],
                                                          rel=1e-5)


def test_results_files_are_readable_by_others(runs):
    umask = os.umask(0o022)
    os.umask(umask)
    for dirpath, _, filenames in os.walk(runs["reference"]):
        for name in filenames:
            mode = os.stat(os.path.join(dirpath, name)).st_mode & 0o777
            assert mode == 0o666 & ~umask or (name == ".lock" and mode == 0o644 & ~umask), (
                name, oct(mode))


def _set_json(relpath, change):
    def damage(run):
        import json

        data = _json(run / relpath)
        change(data)
        (run / relpath).write_text(json.dumps(data))
    return damage


def _write(relpath, content):
    def damage(run):
        path = run / relpath
        if content is None:
            path.unlink()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return damage


def _truncate(relpath):
    def damage(run):
        data = (run / relpath).read_bytes()
        (run / relpath).write_bytes(data[: len(data) // 2])
    return damage


def _legacy(write):
    """Point latest.json at an older-format checkpoints/epoch-0001.npz made by ``write(f)``."""
    def damage(run):
        import json

        with open(run / "checkpoints" / "epoch-0001.npz", "wb") as f:
            write(f)
        latest = run / "checkpoints" / "latest.json"
        latest.write_text(json.dumps({**_json(latest), "weights": "epoch-0001.npz"}))
    return damage


def _npz_with(arrays):
    import numpy as np

    return _legacy(lambda f: np.savez(f, **arrays))


def _npy(f):
    import numpy as np

    np.save(f, np.zeros(3))


def _h5_with_one_dataset(run):
    import h5py

    with h5py.File(run / CKPT, "w") as f:
        f["layers/other/vars/0"] = [1.0, 2.0]


def _h5_layer_renamed(run):
    import h5py

    with h5py.File(run / CKPT, "r+") as f:
        layers = f["layers"]
        first = next(name for name in sorted(layers) if len(layers[name]["vars"]))
        layers.move(first, first + "_renamed")  # a layer with variables


CKPT = "checkpoints/epoch-0001.weights.h5"
STATE = "checkpoints/epoch-0001.json"
LATEST = "checkpoints/latest.json"

# (id, damage done to a copy of the interrupted run, text the one-line error contains); each
# is run as `kerasparse train --resume RUN` (exit 2) and RUN must be left as it was.
RESUME_CASES = [
    ("config-json-invalid", _write("config.json", "{not json"), "config.json is damaged: not valid JSON"),
    ("config-json-list", _write("config.json", "[1, 2]"),
     "config.json is damaged: it holds a JSON list, expected a JSON object"),
    ("config-json-empty", _write("config.json", ""), "config.json is damaged: not valid JSON"),
    ("config-json-not-utf8", _write("config.json", b"\xff\xfe{\x00}\x00"),
     "config.json is damaged: not UTF-8 text"),
    ("config-json-bad-value", _set_json("config.json", lambda c: c.update(epochs=-1)),
     "config.json: epochs must be a number in [1, 1000000]. Received: epochs=-1"),
    ("config-json-unknown-key", _set_json("config.json", lambda c: c.update(epochz=3)),
     "config.json: unknown key 'epochz'"),
    ("config-json-seed-huge", _set_json("config.json", lambda c: c.update(seed=2**40)),
     "config.json: seed must be a number in [0, 4294967295]"),
    ("config-json-wrong-type", _set_json("config.json", lambda c: c.update(lr="fast")),
     "config.json: lr must be a number"),
    ("summary-json-invalid", _write("summary.json", '{"status": "completed",'),
     "summary.json is damaged: not valid JSON"),
    ("summary-json-list", _write("summary.json", '["completed"]'),
     "summary.json is damaged: it holds a JSON list"),
    ("latest-json-invalid", _write(LATEST, "{\"epoch\": 1"), "latest.json is damaged: not valid JSON"),
    ("latest-json-list", _write(LATEST, "[1]"), "latest.json is damaged: it holds a JSON list"),
    ("latest-json-empty-object", _write(LATEST, "{}"),
     "latest.json is damaged: 'epoch' must be an integer in [1, 2]. Received: epoch=None"),
    ("latest-json-epoch-beyond", _set_json(LATEST, lambda p: p.update(epoch=99)),
     "'epoch' must be an integer in [1, 2]. Received: epoch=99"),
    ("latest-json-path-escape", _set_json(LATEST, lambda p: p.update(weights="../config.json")),
     "'weights' must name a file in checkpoints/. Received: weights='../config.json'"),
    ("latest-json-state-not-a-string", _set_json(LATEST, lambda p: p.update(state=7)),
     "'state' must name a file in checkpoints/. Received: state=7"),
    ("latest-json-weights-not-weights", _set_json(LATEST, lambda p: p.update(weights=STATE[12:])),
     "'weights' must name a .weights.h5 (or older .npz) file. Received: weights='epoch-0001.json'"),
    ("checkpoint-missing", _write(CKPT, None), "epoch-0001.weights.h5 is missing (" ),
    ("state-missing", _write(STATE, None), "epoch-0001.json is missing"),
    ("checkpoint-truncated", _truncate(CKPT), "epoch-0001.weights.h5 is damaged"),
    ("checkpoint-empty", _write(CKPT, b""), "epoch-0001.weights.h5 is damaged"),
    ("checkpoint-text", _write(CKPT, "not a checkpoint\n"), "epoch-0001.weights.h5 is damaged"),
    ("checkpoint-other-file", _h5_with_one_dataset,
     "epoch-0001.weights.h5 is damaged (it holds 1 arrays, "),
    ("checkpoint-layer-missing", _h5_layer_renamed, "epoch-0001.weights.h5 cannot be restored"),
    # The manifest of the state file is checked, key by key, before anything is assigned.
    ("model-no-longer-matches", _set_json("config.json", lambda c: c.update(width=17)),
     "epoch-0001.weights.h5 does not match the model: dense1/kernel has shape "),
    ("model-has-a-variable-the-checkpoint-lacks",
     _set_json(STATE, lambda s: s.update(variables=s["variables"][1:])),
     "does not match the model: the model has variable dense1/kernel"),
    ("checkpoint-has-a-variable-the-model-lacks",
     _set_json(STATE, lambda s: s["variables"].append(["extra/kernel", [3], "float32"])),
     "does not match the model: it holds variable extra/kernel (3,), the model has no such"),
    ("checkpoint-dtype-differs",
     _set_json(STATE, lambda s: s["variables"][0].__setitem__(2, "float16")),
     "does not match the model: dense1/kernel is float32, the checkpoint float16"),
    ("state-json-no-variables", _set_json(STATE, lambda s: s.pop("variables")),
     "epoch-0001.json is damaged (no 'variables' entry)"),
    # Older checkpoints (.npz, arrays in variable order) are still read, and checked.
    ("legacy-checkpoint-text", _legacy(lambda f: f.write(b"not a checkpoint\n")),
     "epoch-0001.npz is damaged"),
    ("legacy-checkpoint-npy", _legacy(_npy), "epoch-0001.npz is damaged (not an .npz archive)"),
    ("legacy-checkpoint-fewer-variables", _npz_with({"v00000": [1.0]}),
     "epoch-0001.npz holds 1 variables, the model has"),
    ("state-json-invalid", _write(STATE, "{"), "epoch-0001.json is damaged: not valid JSON"),
    ("state-json-list", _write(STATE, "[]"), "epoch-0001.json is damaged: it holds a JSON list"),
    ("state-json-no-history", _set_json(STATE, lambda s: s.pop("history")),
     "epoch-0001.json is damaged (no 'history' entry)"),
    ("state-json-history-wrong", _set_json(STATE, lambda s: s.update(history="x")),
     "epoch-0001.json is damaged ('history' must be a list of 1 epoch rows)"),
    ("state-json-rng-damaged", _set_json(STATE, lambda s: s.update(python_random=[1])),
     "epoch-0001.json is damaged"),
    ("state-json-numpy-rng-damaged", _set_json(STATE, lambda s: s.update(numpy_random="x")),
     "epoch-0001.json is damaged"),
]


def test_resume_never_shortens_a_run(runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["reference"], run)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["train", "--quiet", "--resume", str(run), "--epochs", "1"])
    assert_one_line_error(result, 2, "--epochs must be at least the run's 2 epochs: a resumed "
                                     "run is extended, never shortened. Received: epochs=1")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_resume_of_a_damaged_run(case, runs, tmp_path):
    import shutil

    _, damage, expected = case
    run = tmp_path / "run"
    shutil.copytree(runs["interrupted"], run)
    damage(run)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["train", "--quiet", "--resume", str(run)])
    assert_one_line_error(result, 2, expected)
    assert snapshot(tmp_path) == before, "a refused resume must not write or delete anything"


# (id, damage, text): `kerasparse report RUN` on a copy of the interrupted run; exit 2.
REPORT_CASES = [
    ("report-config-json-invalid", _write("config.json", "{not json"), "config.json is damaged: not valid JSON"),
    ("report-config-json-list", _write("config.json", "[]"), "config.json is damaged: it holds a JSON list"),
    ("report-config-json-not-utf8", _write("config.json", bytes(range(128, 256))),
     "config.json is damaged: not UTF-8 text"),
    ("report-summary-json-invalid", _write("summary.json", "NaN-ish"), "summary.json is damaged: not valid JSON"),
    ("report-summary-json-list", _write("summary.json", "[1]"), "summary.json is damaged: it holds a JSON list"),
    ("report-history-binary", _write("history.csv", bytes(range(256)) * 4),
     "history.csv is damaged: not UTF-8 text"),
    ("report-history-utf16", _write("history.csv", "epoch,loss\n1,0.5\n".encode("utf-16")),
     "history.csv is damaged"),
    ("report-history-ragged", _write("history.csv", "epoch,loss\n1,0.5,7,8\n"),
     "history.csv is damaged: line 2 is not a row of the table"),
    ("report-history-no-epoch", _write("history.csv", "foo,bar\nx,y\n"),
     "history.csv is damaged: line 2 is not a row of the table"),
    ("report-not-a-run", _write("config.json", None), "is not a kerasparse run directory (no config.json)"),
]


@pytest.mark.parametrize("case", REPORT_CASES, ids=[c[0] for c in REPORT_CASES])
def test_report_of_a_damaged_run(case, runs, tmp_path):
    import shutil

    _, damage, expected = case
    run = tmp_path / "run"
    shutil.copytree(runs["interrupted"], run)
    damage(run)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["report", str(run)])
    assert_one_line_error(result, 2, expected)
    assert snapshot(tmp_path) == before


# (id, compare arguments after --out (OUT: a fresh folder, FILE: a file), text); exit 2.
COMPARE_CASES = [
    ("compare-out-is-a-file", ["--out", "FILE"], "exists and is not a directory"),
    ("compare-out-under-a-file", ["--out", "FILE/sub"], "which is a file, not a folder"),
    ("compare-model-unknown", ["--out", "OUT", "--model", "wrn28-5"], "Did you mean 'wrn28-4'"),
    ("compare-dataset-unknown", ["--out", "OUT", "--dataset", "mnsit"], "Did you mean 'mnist'"),
    ("compare-epochs-huge", ["--out", "OUT", "--epochs", str(2**63)],
     "epochs must be a number in [1, 1000000]"),
    ("compare-seed-huge", ["--out", "OUT", "--seed", str(2**32)],
     "seed must be a number in [0, 4294967295]"),
]


@pytest.mark.parametrize("case", COMPARE_CASES, ids=[c[0] for c in COMPARE_CASES])
def test_compare_bad_input(case, tmp_path):
    _, args, expected = case
    argv = [_placeholder(a, tmp_path, None) for a in args]
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["compare", "--backends", "torch", *argv])
    assert_one_line_error(result, 2, expected)
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_a_kerasparse_run_only(runs, tmp_path):
    """--overwrite on a kerasparse run directory replaces it (the case that must keep
    working), here checked without training: the refusal cases are in TRAIN_CASES."""
    from kerasparse import rundir

    assert rundir.is_run_directory(str(runs["reference"]))
    assert not rundir.is_run_directory(str(tmp_path))


def test_issue16_cases_are_documented():
    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "bad-input.md")
    text = open(doc).read()
    ids = [c[0] for c in RESUME_CASES + REPORT_CASES + COMPARE_CASES]
    missing = [i for i in ids if f"`{i}`" not in text]
    assert not missing, f"cases missing from docs/bad-input.md: {missing}"
