"""kerasparse.presets: the one Keras-free table of model, dataset, activation and controller
names; names checked once (config.resolve); [model] / [controller] preset tables passed to the
builders, recorded in config.json and used on resume."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from typer.testing import CliRunner

from conftest import trainable_count

from kerasparse import callbacks, config, eoc, presets, train
from kerasparse import activations as ks_activations
from kerasparse import layers as ks_layers
from kerasparse import models
from kerasparse.cli import app

runner = CliRunner()
HEAVY = ("keras", "numpy", "jax", "torch", "tensorflow")


def test_presets_and_models_command_import_no_backend():
    code = (
        "import sys\n"
        "import kerasparse.presets, kerasparse.config\n"
        "from typer.testing import CliRunner\n"
        "from kerasparse.cli import app\n"
        "r = CliRunner().invoke(app, ['models', '--defaults'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
        "print(r.output)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    first, text = result.stdout.split("\n", 1)
    assert first == "[]"
    for name, spec in presets.MODELS.items():
        assert name in text and f"{spec.parameter_count():,}" in text


@pytest.mark.parametrize("name", list(presets.MODELS))
def test_closed_form_parameter_count_is_keras_count(name):
    """Every registered model, built at its real size: the closed form equals Keras'
    trainable count (the shapes of the variables Keras creates; their initializers are not
    run, see conftest.trainable_count)."""
    trainable = trainable_count(lambda: models.get_model(name))
    assert trainable > 0
    assert presets.MODELS[name].parameter_count() == trainable


def test_name_tables_are_the_builders_tables():
    assert tuple(ks_activations.ACTIVATIONS) == presets.ACTIVATIONS
    assert set(ks_layers.ACTIVATION_LAYERS) == set(presets.ACTIVATIONS)
    assert tuple(eoc.ACTIVATIONS) == presets.EOC_ACTIVATIONS
    for name in presets.KERAS_ACTIVATIONS:
        keras.activations.get(name)  # Keras knows it
    from kerasparse.data import DATASETS

    assert DATASETS is presets.DATASETS
    assert models.MODELS is presets.MODELS
    managed = {"self", "num_classes", "input_shape", "data_format", "name", "kwargs"}
    for builder, entry in presets.BUILDERS.items():
        params = set(inspect.signature(getattr(models, builder).__init__).parameters)
        assert set(entry.arguments) == params - managed, builder
    for name, (cls, arguments) in presets.CONTROLLERS.items():
        if cls is None:
            continue
        params = set(inspect.signature(getattr(callbacks, cls).__init__).parameters)
        assert set(arguments) == params - {"self", "backup_dir"}, name
    assert config.CONTROLLERS == tuple(presets.CONTROLLERS)


def test_activation_rule_is_the_models_rule():
    # The WRN takes Keras' activations (the CLI once refused them).
    assert config.resolve(overrides={"model": "wrn16-1", "activation": "gelu"})["activation"]
    assert config.resolve(overrides={"model": "mlp100x300", "activation": "HardShrink"})
    with pytest.raises(config.ConfigError, match=r"model 'mlp100x300' \(DeepMLP\) takes "
                       r"activation relu, crelu.*Received: activation='gelu'"):
        config.resolve(overrides={"model": "mlp100x300", "activation": "gelu"})
    with pytest.raises(config.ConfigError, match="unknown activation 'crelo'. Did you mean"):
        config.resolve(overrides={"activation": "crelo"})


def _preset(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


TABLES = """epochs = 1
[model]
name = "wrn16-1"
depth = 10
epsilon = 1e-5
[controller]
name = "mult"
factor = 0.5
"""


def test_tables_resolve_to_config_keys_and_builder_arguments(tmp_path):
    path = _preset(tmp_path, TABLES)
    resolved = config.resolve(path)
    assert (resolved["model"], resolved["depth"], resolved["controller"]) == ("wrn16-1", 10, "mult")
    assert resolved["factor"] == 0.5 and resolved["model_args"] == {"epsilon": 1e-5}
    assert resolved["controller_args"] is None
    # A command-line value wins over the preset's table.
    assert config.resolve(path, {"depth": 16, "factor": 0.9})["depth"] == 16
    assert config.resolve(path, {"depth": 16, "factor": 0.9})["factor"] == 0.9


@pytest.mark.parametrize("text, message", [
    ('[model]\nname = "wrn16-1"\nchannels = 3\n',
     "[model]: WideResNet (model 'wrn16-1') has no argument 'channels'. Allowed keys: name, "
     "depth, width, norm"),
    ('[controller]\nname = "add"\nfactor = 0.5\n',
     "[controller]: AdditiveKeepRatio (controller 'add') has no argument 'factor'."),
    ('[controller]\nfactor = 0.5\n', "controller 'none') has no argument 'factor'. It takes no"),
    ('depth = 10\n[model]\ndepth = 16\n', "depth is given twice, as a key and in [model]"),
    ('[optimizer]\nlr = 1\n', "unknown table [optimizer]."),
    ('[model]\nname = "wrn16-1"\ndepth = "x"\n', "[model] depth: depth must be an integer"),
])
def test_bad_tables_are_one_line_usage_errors(tmp_path, text, message):
    path = _preset(tmp_path, text)
    with pytest.raises(config.ConfigError) as info:
        config.resolve(path)
    assert message in str(info.value)
    result = runner.invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_tables_reach_the_builders():
    class Data:
        num_classes, input_shape = 10, (32, 32, 3)

    resolved = train.resolved_config(config.resolve(overrides={
        "model": "wrn16-1", "model_args": {"depth": 10, "epsilon": 1e-5, "topk_mode": "channel"},
        "controller": "constant", "controller_args": {"keep_ratio": 0.5, "layers": ["final_act"]},
    }))
    model = train.build_model(resolved, Data)
    assert (model.depth, model.epsilon, model.topk_mode) == (10, 1e-5, "channel")
    assert model.count_params() - len(ks_layers_sites(model)) == presets.MODELS[
        "wrn16-1"].parameter_count(depth=10)
    controller = train.build_controller(resolved)
    assert (controller.max_keep_ratio, controller.layer_names) == (0.5, ("final_act",))


def ks_layers_sites(model):
    return [layer for layer in model.layers if isinstance(layer, ks_layers.SparseActivation)]


def test_tables_are_recorded_and_used_on_resume(tmp_path):
    """A run from a preset with [model] / [controller] tables records their values in
    config.json; a resumed, extended run uses them."""
    preset = _preset(tmp_path, """epochs = 1
dataset = "embedded"
batch_size = 16
train_examples = 32
test_examples = 16
steps_per_epoch = 1
monitor_batch = 0
[model]
name = "wrn16-1"
depth = 10
epsilon = 1e-5
[controller]
name = "constant"
keep_ratio = 0.5
layers = ["final_act"]
""")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(preset), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())
    assert (saved["model"], saved["depth"], saved["width"]) == ("wrn16-1", 10, 1)
    assert saved["model_args"] == {"epsilon": 1e-5}
    assert (saved["controller"], saved["keep_ratio"]) == ("constant", 0.5)
    assert saved["controller_args"] == {"layers": ["final_act"]}
    result = runner.invoke(app, ["train", "--resume", str(out), "--epochs", "2", "-q"])
    assert result.exit_code == 0, result.output
    resumed = json.loads((out / "config.json").read_text())
    assert {k: v for k, v in resumed.items() if k != "epochs"} == {
        k: v for k, v in saved.items() if k != "epochs"}
    assert resumed["epochs"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_done"] == 2
    # The constant controller (on the listed site) held r = 0.5.
    assert summary["final"]["keep_ratio"] == pytest.approx(0.5)


def test_the_documented_tables_example_resolves(tmp_path):
    text = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    resolved = config.resolve(_preset(tmp_path, example))
    assert (resolved["model"], resolved["depth"], resolved["controller"], resolved["factor"]) == (
        "wrn16-1", 10, "mult", 0.5)
    assert resolved["model_args"] == {"epsilon": 1e-5, "topk_mode": "channel"}
    assert resolved["controller_args"] == {"layers": ["final_act"]}
