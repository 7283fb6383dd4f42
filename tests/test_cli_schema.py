"""One schema (issue 15, item 2): the options of ``kerasparse train`` are generated from
``config.FIELDS`` (flag, type, choices, help, default), and ``train --help`` imports no Keras."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kerasparse import config
from kerasparse.cli import app, train_cmd

runner = CliRunner()


def test_train_help_lists_every_config_key_without_importing_keras():
    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from kerasparse.cli import app\n"
            "r = CliRunner().invoke(app, ['train', '--help'], terminal_width=200)\n"
            "assert r.exit_code == 0, r.output\n"
            "print('keras' in sys.modules)\n"
            "print(r.output)\n")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    first, text = result.stdout.split("\n", 1)
    assert first == "False"  # no backend imported to print the help
    text = " ".join(text.split())
    from kerasparse.cli.train_cmd import FIELD_OPTIONS

    # callbacks: --callback; the tables of constructor arguments: [model] / [controller], --set
    assert set(config.FIELDS) - set(FIELD_OPTIONS) == {"callbacks", "model_args", "controller_args"}
    assert "--callback MODULE:FACTORY" in text  # `callbacks`: one repeatable option per callback
    for key in FIELD_OPTIONS:
        field = config.FIELDS[key]
        flag = "--" + key.replace("_", "-")
        assert (f"{flag} / --no-{flag[2:]}" if field.type is bool else flag) in text, key
        words = " ".join(field.help.split())
        assert words[1:] in text, key  # the field's help (first letter capitalised)
        if field.choices:
            assert "|".join(field.choices) in text, key


@pytest.fixture
def seen(monkeypatch):
    """The resolved config `kerasparse train` hands to train.run (replaced: nothing trains)."""
    from kerasparse import train

    resolved_configs = {}

    def fake_run(out, resolved, backend, **kwargs):
        resolved_configs.update(resolved)
        return {"status": "completed", "backend": backend, "epochs_done": 0, "epochs": 1,
                "best_test_accuracy": None, "final": {}, "wall_time_s": 0.0}

    monkeypatch.setattr(train, "run", fake_run)
    return resolved_configs


def test_generated_options_reach_the_config(seen, tmp_path):
    result = runner.invoke(app, [
        "train", "--out", str(tmp_path / "run"), "--model", "wrn16-1", "--dataset", "embedded",
        "--optimizer", "adam", "--augment", "--norm", "batchnorm", "--weight-decay", "0.01",
        "--checkpoint-every", "3", "--controller", "add", "--set", "monitor=loss"])
    assert result.exit_code == 0, result.output
    assert (seen["optimizer"], seen["augment"], seen["norm"], seen["weight_decay"],
            seen["checkpoint_every"], seen["monitor"]) == ("adam", True, "batchnorm", 0.01, 3,
                                                           "loss")
    bad = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--schedule", "linear"])
    assert bad.exit_code == 2 and "'linear' is not one of" in bad.output


@pytest.mark.parametrize("key", ["norm", "schedule", "monitor_batch"])
def test_resume_refuses_any_generated_option(key, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    flag = "--" + key.replace("_", "-")
    value = {"norm": "none", "schedule": "constant", "monitor_batch": "0"}[key]
    result = runner.invoke(app, ["train", "--resume", str(tmp_path), flag, value])
    assert result.exit_code == 2
    assert f"drop the other options ({key})" in " ".join(result.output.split())
    assert train_cmd.train.__signature__.parameters[key].default is None


def test_compare_options_come_from_the_same_schema(tmp_path):
    from kerasparse.cli import compare_cmd

    text = " ".join(runner.invoke(app, ["compare", "--help"], terminal_width=200).output.split())
    for key in vars(compare_cmd.OPT):
        field = config.FIELDS[key]
        assert "--" + key.replace("_", "-") in text and field.help[1:] in text, key
    assert "|".join(config.PRECISIONS) in text
    bad = runner.invoke(app, ["compare", "--out", str(tmp_path / "c"), "--backends", "jax",
                              "--precision", "float16"])
    assert bad.exit_code == 2 and "'float16' is not one of" in bad.output
    assert not (tmp_path / "c").exists()


def test_optimizer_switched_on_a_plain_sgd_preset(seen, tmp_path):
    # A preset written for plain SGD (momentum 0, no Nesterov) with --optimizer adam: Adam
    # reads neither, so the run records their defaults, as every Adam run does; a preset
    # that itself pairs adam with a momentum is refused (one file, one contradiction).
    preset = tmp_path / "plain_sgd.toml"
    preset.write_text('model = "mlp100x300"\ndataset = "embedded"\nmomentum = 0.0\n'
                      'nesterov = false\n')
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), "--config",
                                 str(preset), "--optimizer", "adam"])
    assert result.exit_code == 0, result.output
    assert (seen["optimizer"], seen["momentum"], seen["nesterov"]) == ("adam", 0.9, True)
    preset.write_text('model = "mlp100x300"\ndataset = "embedded"\noptimizer = "adam"\n'
                      'momentum = 0.5\n')
    bad = runner.invoke(app, ["train", "--out", str(tmp_path / "bad"), "--config", str(preset)])
    assert bad.exit_code == 2 and "momentum is read by the sgd optimizer only" in bad.output
    assert not (tmp_path / "bad").exists()
