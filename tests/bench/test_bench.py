"""The bench code itself: a tiny run of every suite on the CPU, no timing asserted.

Checks the cross-check runs (and catches a wrong path), the JSON validates against the schema, the
Markdown and the PNG are written, `compare` and `readme` work, and unavailable paths carry reasons.
"""

import json
import os
import sys

import numpy as np
import pytest

# bench/ lives at the repository root, beside dlgpu/ (it is not part of the wheel).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import __main__ as cli
from bench import paths as paths_module
from bench import report, run, schema
from bench.suites._common import Case


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    doc, json_path = run.main(["--size", "tiny", "--device", "cpu", "--reps", "1", "--warmup", "0",
                               "--out", str(out), "--quiet"])
    return doc, json_path


def test_every_suite_runs_and_validates(tiny_run):
    doc, json_path = tiny_run
    with open(json_path) as f:
        on_disk = json.load(f)
    assert schema.errors(on_disk) == []
    assert {r["suite"] for r in on_disk["results"]} == {"ops", "models", "e2e"}
    names = {f"{r['suite']}/{r['name']}" for r in on_disk["results"]}
    for expected in ("ops/dense_relu", "ops/conv2d_fwd_bwd", "ops/act_relu", "ops/softmax_xent",
                     "ops/maxpool_fwd_bwd", "ops/adam", "models/mlp_train", "models/cnn_train",
                     "models/cnn_predict", "e2e/mlp_epoch"):
        assert expected in names
    assert os.path.basename(json_path).startswith(doc["created"][:10])


def test_cross_check_agrees_on_the_cpu(tiny_run):
    doc, _ = tiny_run
    for r in doc["results"]:
        dlgpu = r["entries"]["dlgpu-cpu"]
        assert dlgpu["status"] == "ok", (r["name"], dlgpu)
        assert dlgpu["check"] in ("reference", "agrees")
        assert dlgpu["median_s"] > 0
    mlp = next(r for r in doc["results"] if r["name"] == "mlp_train")
    assert mlp["entries"]["numpy-handwritten"]["status"] == "ok"


def test_unavailable_paths_are_listed_with_reasons(tiny_run):
    doc, _ = tiny_run
    listed = {p["name"]: p for p in doc["paths"]}
    assert set(listed) == set(paths_module.ORDER)
    for p in listed.values():
        assert p["available"] or p["reason"]
    assert "not requested" in listed["dlgpu-gpu-kernels"]["reason"]
    text = report.markdown(doc)
    assert "dlgpu-gpu-kernels" in text and "not requested" in text


def test_markdown_targets_and_plot(tiny_run, tmp_path):
    doc, json_path = tiny_run
    text = report.markdown(doc)
    assert "| benchmark |" in text and "### targets" in text
    verdicts = {t["verdict"] for t in doc["targets"]}
    assert verdicts <= {"MET", "MISSED", "NOT MEASURED"}
    assert any(t["name"].startswith("framework overhead") for t in doc["targets"])
    pytest.importorskip("matplotlib")
    png = os.path.splitext(json_path)[0] + ".png"
    assert os.path.getsize(png) > 1000
    assert report.plot(doc, str(tmp_path / "again.png")) is None


def test_wrong_result_is_marked_and_not_timed():
    def setup(path):
        value = np.ones(3, np.float32) * (2.0 if path.name == "dlgpu-cpu" else 1.0)
        return (lambda: None), (lambda: {"y": value})
    case = Case("ops", "fake", {}, setup)
    paths = [p for p in paths_module.discover(("cpu",), {"dlgpu-cpu", "torch-cpu"}) if p.available]
    if len(paths) < 2:
        pytest.skip("needs torch-cpu as the reference")
    result = run.run_case(case, paths, run.PROFILES["tiny"], {"cpu": {}}, log=lambda *a: None)
    wrong = result["entries"]["dlgpu-cpu"]
    assert wrong["status"] == "wrong" and "WRONG RESULT" in wrong["reason"] and "median_s" not in wrong
    assert result["entries"]["torch-cpu"]["status"] == "ok"


def test_compare_and_readme(tiny_run, tmp_path, capsys):
    _, json_path = tiny_run
    assert cli.main(["compare", json_path, json_path]) == 0
    out = capsys.readouterr().out
    assert "B/A time" in out and "mlp_train" in out and "1.00" in out
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Performance\n\n<!-- perf:start -->\nold\n<!-- perf:end -->\ntail\n")
    assert cli.main(["readme", json_path, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "Measured on" in text and text.endswith("tail\n")


def test_schema_rejects_a_broken_document(tiny_run):
    doc, _ = tiny_run
    broken = json.loads(json.dumps(doc, default=str))
    broken["results"][0]["entries"]["dlgpu-cpu"]["status"] = "fast"
    del broken["machine"]
    problems = schema.errors(broken)
    assert any("machine" in p for p in problems) and any("fast" in p for p in problems)


def test_warm_up_lasts_its_minimum_time_and_counts_its_calls():
    from bench import timing
    path = next(p for p in paths_module.discover(("cpu",), {"dlgpu-cpu"}))
    calls = []
    result = timing.measure(lambda: calls.append(1), path, warmup=2, reps=2, number=1, min_warmup_s=0.02)
    assert result["warmup"] > 2 and len(calls) == result["warmup"] + 2  # + the two timed repetitions
    calls.clear()
    result = timing.measure(lambda: calls.append(1), path, warmup=0, reps=1, number=1)
    assert result["warmup"] == 0 and len(calls) == 1


@pytest.mark.gpu
def test_gpu_paths_run_and_agree(tmp_path):
    """Both dlgpu GPU paths (our kernels, generic CuPy) time with CUDA events and agree with each other; the
    results file is named after the GPU.  On the simulated GPU this checks the harness, not the times."""
    doc, json_path = run.main(["--size", "tiny", "--device", "gpu", "--suite", "ops,models", "--filter", "mlp",
                               "--reps", "1", "--warmup", "0", "--out", str(tmp_path), "--quiet", "--no-plot"])
    assert schema.errors(doc) == []
    assert doc["device_slug"] in os.path.basename(json_path) and "epyc" not in doc["device_slug"]
    ran = [r for r in doc["results"] if r["name"] in ("mlp_train", "mlp_predict")]
    assert ran
    for r in ran:
        for path in ("dlgpu-gpu-kernels", "dlgpu-gpu-generic"):
            entry = r["entries"][path]
            assert entry["status"] == "ok", (r["name"], path, entry)
            assert entry["check"] in ("reference", "agrees") and entry["median_s"] > 0


def test_remat_memory_bench_runs_and_rematerialization_keeps_less(capsys):
    from bench import remat_memory
    remat_memory.main(depth=4, width=256, batch=256, repetitions=1)
    rows = {line[:13].strip(): line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    kept = {variant: float(rows[variant][-4]) for variant in ("plain", "per layer", "blocks of 4")}
    assert kept["blocks of 4"] < kept["per layer"] < kept["plain"]
