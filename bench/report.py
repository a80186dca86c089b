"""Reading a results document: target verdicts, the Markdown tables, the PNG, compare, README section."""

from __future__ import annotations

import json

STATUS_WORDS = {"wrong": "WRONG RESULT", "error": "ERROR", "unavailable": "unavailable", "n/a": "n/a"}


def fmt_time(s):
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _params(params):
    return ", ".join(f"{k}={v}" for k, v in params.items() if k != "data")


# -- targets -------------------------------------------------------------------------------------
# (name, device, case name, numerator path, denominator path, threshold, comparison, kind, params filter)
# kind "speedup": value = median(denominator) / median(numerator), i.e. how many times faster.
# kind "slowdown": value = median(numerator) / median(denominator).
# kind "peak": value = the numerator's achieved fraction of the device's peak.
TARGETS = [
    ("MLP train step >= 1.5x PyTorch (CPU)", "cpu", "models/mlp_train", "dlgpu-cpu", "torch-cpu", 1.5, ">=", "speedup", None),
    ("CNN train step >= 1.0x PyTorch (CPU)", "cpu", "models/cnn_train", "dlgpu-cpu", "torch-cpu", 1.0, ">=", "speedup", None),
    ("CNN predict >= 1.8x PyTorch (CPU)", "cpu", "models/cnn_predict", "dlgpu-cpu", "torch-cpu", 1.8, ">=", "speedup", None),
    ("framework overhead <= 1.15x hand-written numpy MLP step", "cpu", "models/mlp_train", "dlgpu-cpu",
     "numpy-handwritten", 1.15, "<=", "slowdown", None),
    ("fused dense >= 1.3x CuPy matmul+add+relu", "gpu", "ops/dense_relu", "dlgpu-gpu-kernels", "dlgpu-gpu-generic",
     1.3, ">=", "speedup", None),
    ("SGEMM 4096^3 >= 0.8x cuBLAS FP32", "gpu", "ops/sgemm", "dlgpu-gpu-kernels", "dlgpu-gpu-generic", 0.8, ">=",
     "speedup", {"n": 4096}),
    ("conv2d fwd+bwd >= 0.7x cuDNN (PyTorch)", "gpu", "ops/conv2d_fwd_bwd", "dlgpu-gpu-kernels", "torch-gpu", 0.7,
     ">=", "speedup", None),
    ("elementwise >= 80% of HBM bandwidth", "gpu", "ops/act_", "dlgpu-gpu-kernels", None, 0.8, ">=", "peak", None),
    ("CNN train step >= 1.0x PyTorch eager (GPU)", "gpu", "models/cnn_train", "dlgpu-gpu-kernels", "torch-gpu", 1.0,
     ">=", "speedup", None),
]


def _why_missing(result, name):
    e = result["entries"].get(name) or {}
    return f"{name} {STATUS_WORDS.get(e.get('status'), e.get('status'))}: {e.get('reason')}"


def evaluate_targets(doc):
    devices = doc["options"]["devices"]
    out = []
    for name, device, case, num, den, threshold, comparison, kind, where in TARGETS:
        if device not in devices:
            continue
        suite = case.split("/")[0]
        matching = [r for r in doc["results"] if f"{r['suite']}/{r['name']}".startswith(case)
                    and device in r.get("devices", [device])  # a CPU-only size says nothing about a GPU target
                    and (where is None or all(r["params"].get(k) == v for k, v in where.items()))
                    and (r["entries"].get(num) or {}).get("status") != "n/a"]
        missing = [p for p in doc["paths"] if p["name"] in (num, den) and not p["available"]]
        if missing:  # one line per target, not one per size, when a path cannot run here at all
            out.append({"name": name, "device": device, "threshold": threshold, "comparison": comparison,
                        "value": None, "verdict": "NOT MEASURED",
                        "words": f"NOT MEASURED: {missing[0]['name']} unavailable: {missing[0]['reason']}"})
            continue
        if suite not in doc["options"]["suites"] or not matching:
            out.append({"name": name, "device": device, "threshold": threshold, "comparison": comparison,
                        "value": None, "verdict": "NOT MEASURED",
                        "words": f"NOT MEASURED: no {case} result in this run"})
            continue
        for r in matching:
            label = name if len(matching) == 1 else f"{name} [{r['name']} {_params(r['params'])}]"
            a = r["entries"].get(num) or {}
            b = (r["entries"].get(den) or {}) if den else {}
            value, words = None, None
            if a.get("status") != "ok":
                words = "NOT MEASURED: " + _why_missing(r, num)
            elif kind == "peak":
                value = a.get("peak_fraction")
                if value is None:
                    words = "NOT MEASURED: the device's peak is unknown (not in bench/facts.py GPU_PEAKS)"
            elif b.get("status") != "ok":
                words = "NOT MEASURED: " + _why_missing(r, den)
            else:
                value = b["median_s"] / a["median_s"] if kind == "speedup" else a["median_s"] / b["median_s"]
            if value is None:
                verdict = "NOT MEASURED"
            else:
                met = value >= threshold if comparison == ">=" else value <= threshold
                verdict = "MET" if met else "MISSED"
                shown = (f"{value:.0%}" if kind == "peak" else f"{value:.2f}x")
                want = (f"{threshold:.0%}" if kind == "peak" else f"{threshold}x")
                rel = comparison if met else {">=": "<", "<=": ">"}[comparison]
                words = f"{verdict}: {shown} {rel} {want}"
            out.append({"name": label, "device": device, "threshold": threshold, "comparison": comparison,
                        "value": value, "verdict": verdict, "words": words})
    return out


# -- Markdown ------------------------------------------------------------------------------------

def machine_line(doc):
    m = doc["machine"]
    cpu, blas, v = m["cpu"], m["blas"], m["versions"]
    parts = [f"CPU {cpu.get('model')} ({cpu.get('usable_cores')} usable cores, {cpu.get('isa')})",
             f"BLAS {blas.get('name')} {blas.get('version')}", f"Python {v.get('python')}", f"numpy {v.get('numpy')}",
             f"torch {v.get('torch')} ({v.get('torch_threads')} threads)" if v.get("torch") else "torch not installed"]
    gpu = m.get("gpu") or {}
    if gpu.get("name"):
        mem = gpu.get("memory_total_bytes")
        parts.append(f"GPU {gpu['name']} ({mem / 2**30:.0f} GiB, driver {gpu.get('driver')}, "
                     f"max SM clock {gpu.get('max_sm_clock_mhz')} MHz, power limit {gpu.get('power_limit_w')} W)")
        parts.append(f"CuPy {v.get('cupy')}, CUDA runtime {v.get('cuda_runtime')}, driver API {v.get('cuda_driver')}")
    return "; ".join(parts)


def _throughput(e):
    if e.get("gflops") is not None:
        return f"{e['gflops']:.1f} GFLOP/s"
    if e.get("gbps") is not None:
        return f"{e['gbps']:.1f} GB/s"
    return "—"


def results_table(doc, suites=None):
    lines = []
    for suite in ("ops", "models", "e2e"):
        rows = [r for r in doc["results"] if r["suite"] == suite]
        if not rows or (suites and suite not in suites):
            continue
        lines += [f"### {suite}", "",
                  "| benchmark | params | path | median | IQR | × PyTorch (speed) | throughput | % of peak | check |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in rows:
            for path, e in r["entries"].items():
                if e["status"] in ("unavailable", "n/a"):
                    continue  # unavailable paths are listed once, with the reason, in the Paths table
                if e["status"] != "ok":
                    lines.append(f"| {r['name']} | {_params(r['params'])} | {path} | "
                                 f"{STATUS_WORDS[e['status']]} | | | | | {e['reason']} |")
                    continue
                ratio = e.get("speed_vs_pytorch")
                frac = e.get("peak_fraction")
                check = e.get("check")
                if check == "agrees":
                    check = f"agrees ({e['max_rel_err']:.0e})"
                lines.append(f"| {r['name']} | {_params(r['params'])} | {path} | {fmt_time(e['median_s'])} | "
                             f"{fmt_time(e['iqr_s']) if e.get('reps', 0) > 1 else '—'} | {'—' if ratio is None else f'{ratio:.2f}×'} | "
                             f"{_throughput(e)} | {'—' if frac is None else f'{frac:.0%}'} | {check} |")
        lines.append("")
    return lines


def targets_table(doc):
    lines = ["| target | verdict |", "| --- | --- |"]
    lines += [f"| {t['name']} | {t['words']} |" for t in doc["targets"]]
    return lines


def paths_table(doc):
    lines = ["| path | device | available | reason |", "| --- | --- | --- | --- |"]
    lines += [f"| {p['name']} | {p['device']} | {'yes' if p['available'] else 'no'} | {p['reason'] or ''} |"
              for p in doc["paths"]]
    return lines


def _warmup_words(profile):
    words = f"{profile['warmup']} warm-up call(s)"
    if profile.get("min_warmup_s"):
        words += f" and at least {profile['min_warmup_s']:g} s of them"
    return words


def markdown(doc):
    lines = [f"## dlgpu bench, {doc['created']}, {doc['device_slug']}", "", machine_line(doc), "",
             f"Size `{doc['options']['size']}`; median of {doc['options']['profile']['reps']} repetitions after "
             f"{_warmup_words(doc['options']['profile'])}; × PyTorch = PyTorch's time / this path's time "
             "on the same device (> 1: faster than PyTorch).", ""]
    if doc["targets"]:
        lines += ["### targets", ""] + targets_table(doc) + [""]
    lines += results_table(doc)
    lines += ["### paths", ""] + paths_table(doc)
    samples = doc.get("gpu_samples") or {}
    if samples.get("count"):
        parts = [f"{k} {samples[k]['min']:.0f}–{samples[k]['max']:.0f} (median {samples[k]['median']:.0f})"
                 for k in ("sm_clock_mhz", "power_w", "gpu_util_pct", "temp_c") if k in samples]
        lines += ["", f"GPU during the run ({samples['count']} samples): " + "; ".join(parts)]
    return "\n".join(lines)


# -- plot ----------------------------------------------------------------------------------------

def plot(doc, png_path):
    """Median time per step for every case and path (log scale); returns None or why it was skipped."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        return f"matplotlib unavailable: {exc}; pip install 'dlgpu[bench]'"
    suites = [s for s in ("ops", "models", "e2e") if any(r["suite"] == s for r in doc["results"])]
    if not suites:
        return "no results"
    path_names = [p["name"] for p in doc["paths"] if p["available"]]
    colors = dict(zip(_path_order(), ("tab:blue", "tab:gray", "tab:red", "tab:purple", "tab:green", "tab:olive",
                                      "tab:orange")))

    def timed(r):
        return any((e or {}).get("status") == "ok" for e in r["entries"].values())
    suites = [s for s in suites if any(r["suite"] == s and timed(r) for r in doc["results"])]
    if not suites:
        return "no timed results"
    heights = [max(1, sum(1 for r in doc["results"] if r["suite"] == s and timed(r))) for s in suites]
    fig, axes = plt.subplots(len(suites), 1, figsize=(10, 1.2 + 0.45 * sum(heights) + 0.8 * len(suites)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    width = 0.8 / max(1, len(path_names))
    for ax, suite in zip(axes[:, 0], suites):
        rows = [r for r in doc["results"] if r["suite"] == suite and timed(r)]
        for j, name in enumerate(path_names):
            ys, xs = [], []
            for i, r in enumerate(rows):
                e = r["entries"].get(name) or {}
                if e.get("status") == "ok":
                    ys.append(i + (j - (len(path_names) - 1) / 2) * width)
                    xs.append(e["median_s"] * 1e3)
            if xs:
                ax.barh(ys, xs, height=width, label=name, color=colors.get(name))
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([f"{r['name']} ({_params(r['params'])})"[:60] for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("median ms per step (log; lower is better)")
        ax.set_title(suite, fontsize=10)
    handles = {}
    for ax in axes[:, 0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    axes[0, 0].legend(list(handles.values()), list(handles), fontsize=7, loc="best")
    fig.suptitle(f"dlgpu bench {doc['created']} — {doc['device_slug']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return None


def _path_order():
    from bench.paths import ORDER
    return ORDER


# -- compare and README --------------------------------------------------------------------------

def load(path):
    with open(path) as f:
        return json.load(f)


def _index(doc):
    out = {}
    for r in doc["results"]:
        for path, e in r["entries"].items():
            key = (r["suite"], r["name"], json.dumps(r["params"], sort_keys=True), path)
            out[key] = e
    return out


def compare(a, b, a_name="A", b_name="B"):
    ia, ib = _index(a), _index(b)
    lines = [f"A: {a_name} — {a['created']} — {machine_line(a)}", f"B: {b_name} — {b['created']} — {machine_line(b)}",
             "", "| suite | benchmark | params | path | A median | B median | B/A time |",
             "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    for key in list(ia) + [k for k in ib if k not in ia]:
        ea, eb = ia.get(key) or {}, ib.get(key) or {}
        if ea.get("status") in (None, "unavailable", "n/a") and eb.get("status") in (None, "unavailable", "n/a"):
            continue
        show = lambda e: fmt_time(e["median_s"]) if e.get("status") == "ok" else STATUS_WORDS.get(e.get("status"), "absent")  # noqa: E731
        ratio = (f"{eb['median_s'] / ea['median_s']:.2f}" if ea.get("status") == "ok" and eb.get("status") == "ok"
                 else "—")
        suite, name, params, path = key
        lines.append(f"| {suite} | {name} | {_params(json.loads(params))} | {path} | {show(ea)} | {show(eb)} | {ratio} |")
    return "\n".join(lines)


START, END = "<!-- perf:start -->", "<!-- perf:end -->"


def readme_section(doc, source):
    lines = [f"Measured on {doc['device_slug']} on {doc['created'][:10]} (`{source}`; regenerate this section "
             f"with `python -m bench readme {source}`).", "", machine_line(doc), "",
             "× PyTorch = PyTorch's time / dlgpu's time on the same device (> 1: dlgpu is faster).", ""]
    if doc["targets"]:
        lines += ["#### Targets", ""] + targets_table(doc) + [""]
    lines += [l.replace("### ", "#### ") for l in results_table(doc)]
    lines += ["#### Paths", ""] + paths_table(doc)
    return "\n".join(lines)


def update_readme(readme_path, doc, source):
    text = open(readme_path).read()
    if START not in text or END not in text:
        raise SystemExit(f"bench readme: {readme_path} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = head + START + "\n" + readme_section(doc, source) + "\n" + END + tail
    with open(readme_path + ".tmp", "w") as f:
        f.write(new)
    import os
    os.replace(readme_path + ".tmp", readme_path)
