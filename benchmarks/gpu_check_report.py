"""The report of benchmarks/gpu_check.sh: gathers OUTDIR/parts/* and the two training runs
into OUTDIR/gpu_check.json and prints its status line.

    python benchmarks/gpu_check_report.py OUTDIR SMALL(0|1) START_EPOCH_S "jax torch" N_TRAIN
"""

import csv
import json
import os
import sys
import time
import xml.etree.ElementTree as ET


def read_json(path, default=None):
    """A JSON file, or the last line of a captured output that ends with one."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return default
    for candidate in (text, text.splitlines()[-1] if text else ""):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return default


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def tests(parts, backend, problems):
    try:
        suite = ET.parse(os.path.join(parts, f"tests_{backend}.xml")).getroot()
    except (OSError, ET.ParseError):  # killed by its timeout: count the -v lines so far
        text = read_text(os.path.join(parts, f"tests_{backend}.txt"))
        counts = {"passed": text.count(" PASSED"), "failed": text.count(" FAILED"),
                  "errors": text.count(" ERROR"), "finished": False}
        problems.append(f"{backend} tests did not finish (see parts/tests_{backend}.txt): "
                        f"{counts}")
        return counts
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    if counts["failures"] or counts["errors"] or not counts["tests"]:
        problems.append(f"{backend} tests: {counts}")
    return counts


def train(run, n_train, backend, problems):
    summary = read_json(os.path.join(run, "summary.json"))
    if summary is None:
        problems.append(f"{backend} train did not finish")
        return None
    with open(os.path.join(run, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    times = [float(r["epoch_time_s"]) for r in rows]
    if summary["status"] != "completed":
        problems.append(f"{backend} train status {summary['status']}")
    return {
        "status": summary["status"],
        "device": summary.get("device"),
        "examples": n_train,
        "epoch_time_s": times,  # includes the test-set evaluation at the epoch's end
        # epoch 2: compilation excluded
        "images_per_s_epoch2": n_train / times[1] if len(times) > 1 else None,
        "test_accuracy": [float(r["test_accuracy"]) for r in rows],
        "loss": [float(r["loss"]) for r in rows],
        "keep_ratio": [float(r["keep_ratio"]) for r in rows if r.get("keep_ratio")],
        "wall_time_s": summary["wall_time_s"],
    }


def main(out, small, start, backends, n_train):
    parts = os.path.join(out, "parts")
    problems = []
    report = {"small": small, "machine": read_text(os.path.join(parts, "nvidia_smi.txt")).strip(),
              "backends": {}}
    for b in backends:
        info = read_json(os.path.join(parts, f"info_{b}.json")) or {}
        sees_gpu = any(d.get("kind") == "gpu" for d in info.get("devices", []))
        if not sees_gpu and not small:
            problems.append(f"{b} sees no GPU")
        bench = read_json(os.path.join(parts, f"bench_{b}.json"))
        if bench is None:
            problems.append(f"{b} bench did not finish")
        report["backends"][b] = {
            "info": info or None,
            "sees_gpu": sees_gpu,
            "tests": tests(parts, b, problems),
            "bench": bench,
            "train": train(os.path.join(out, f"train_{b}"), n_train, b, problems),
        }
    report["input_pipeline"] = read_json(os.path.join(parts, "input_pipeline.json"))
    report["data"] = read_text(os.path.join(parts, "data.txt")).strip().splitlines()
    report["elapsed_s"] = int(time.time()) - start
    report["problems"] = problems
    report["status"] = "ok" if not problems else "problems"
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({"status": report["status"], "problems": problems,
                      "elapsed_s": report["elapsed_s"]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4].split(),
         int(sys.argv[5]))
