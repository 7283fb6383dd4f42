"""``kerasparse bench --input-pipeline`` (issue 11): the JSON report of the input pipeline alone,
with the old tf.data pipeline's figure beside it where TensorFlow is installed."""

import importlib.util
import json

from typer.testing import CliRunner

from kerasparse.cli import app

runner = CliRunner()


def test_input_pipeline_json_report():
    result = runner.invoke(app, ["bench", "--input-pipeline", "--dataset", "embedded",
                                 "--batch-size", "64", "--augment", "--steps", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["batch_size"] == 64 and report["augment"] is True and report["flip"] is True
    assert report["input_shape"] == [32, 32, 3] and report["batches"] == 40
    assert report["images_per_s"] > 0 and report["single_thread_images_per_s"] > 0
    assert set(report["threads"]) >= {"1"} and all(v > 0 for v in report["threads"].values())
    if importlib.util.find_spec("tensorflow") is not None:
        assert report["tf_data_images_per_s"] > 0
    else:
        assert report["tf_data_note"] == "TensorFlow is not installed"


def test_input_pipeline_unknown_dataset():
    result = runner.invoke(app, ["bench", "--input-pipeline", "--dataset", "cifar11"])
    assert result.exit_code == 2 and "Did you mean 'cifar10'" in result.output
