"""Inference benchmark: Keras in-process versus LiteRT (1 and 2 threads), batch of 5 scans.

Each runner is measured in its own fresh subprocess, so resident memory (RSS) is that runner's
alone: import, load the model, preprocess five synthetic scans with the one preprocessing
function, warm up, then time repeated calls. Printed: import time, load time, median and p90
latency (model call alone, and preprocessing + model), RSS after the runs and its peak.

    .venv/bin/python bench/inference.py                      # small CNN (the demo model) and MobileNetV2
    .venv/bin/python bench/inference.py --architectures small_cnn --runs 50
    .venv/bin/python bench/inference.py --smoke      # small CNN, 3 runs, exported to a temp folder

Models are built with random weights (latency and memory do not depend on the values) and
exported once to bench/out/ (ignored by git; ``--out`` for another folder); this step imports
TensorFlow in a subprocess too. ``--smoke`` checks the whole path (export included, into a
temporary folder) in about 15 s; its figures are too few to mean much.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZES = {"small_cnn": 96, "mobilenet_v2": 224}


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB, from /proc."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def prepare(architectures: list[str]) -> None:
    """Build, export (.keras and .tflite) and write five scans; skipped when already there."""
    from ml.synthetic import SyntheticConfig, generate_split

    scans = OUT / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    for scan in generate_split(seed=42, split="test", babies=5, scans_per_baby=1, config=SyntheticConfig()):
        (scans / f"{scan.baby_key}.jpg").write_bytes(scan.jpeg)
    missing = [a for a in architectures if not (OUT / a / "model.tflite").exists()]
    if not missing:
        return
    print(f"Exporting {', '.join(missing)} to {OUT} (once) …", flush=True)
    subprocess.run(
        [sys.executable, __file__, "--export", "--architectures", ",".join(missing), "--out", str(OUT)],
        check=True,
        capture_output=True,
    )


def export(architectures: list[str]) -> None:
    """Runs in its own subprocess: the only step here that imports TensorFlow for building."""
    import keras

    from predictions.training.export import export_keras, export_tflite
    from predictions.training.factory import build_model, default_input_spec

    keras.utils.set_random_seed(0)
    for name in architectures:
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        model = build_model(name, default_input_spec(name, SIZES[name]))
        export_keras(model, folder / "model.keras")
        export_tflite(model, folder / "model.tflite")


def worker(runner: str, architecture: str, threads: int, runs: int) -> dict:
    """Runs inside the measured subprocess; returns its figures."""
    started = time.perf_counter()
    if runner == "keras":
        import keras  # noqa: F401 - the import is what is timed
        import tensorflow  # noqa: F401
    else:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    from ml.preprocessing import preprocess_batch

    import_seconds = time.perf_counter() - started
    spec = _spec(architecture)
    paths = sorted((OUT / "scans").glob("*.jpg"))[:5]
    started = time.perf_counter()
    if runner == "keras":
        import keras

        model = keras.models.load_model(OUT / architecture / "model.keras", compile=False)

        def call(batch):
            return model.predict_on_batch(batch)
    else:
        from ml.litert import LiteRTModel

        runner_model = LiteRTModel((OUT / architecture / "model.tflite").read_bytes(), num_threads=threads)

        def call(batch):
            return runner_model.logits(batch)

    load_seconds = time.perf_counter() - started
    batch = preprocess_batch(paths, spec)
    for _ in range(3):
        call(batch)
    model_times, total_times = [], []
    for _ in range(runs):
        started = time.perf_counter()
        call(batch)
        model_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        call(preprocess_batch(paths, spec))
        total_times.append(time.perf_counter() - started)
    rss, peak = _rss_mb()
    return {
        "import_s": import_seconds,
        "load_s": load_seconds,
        "median_ms": statistics.median(model_times) * 1000,
        "p90_ms": sorted(model_times)[int(0.9 * (runs - 1))] * 1000,
        "median_with_preprocessing_ms": statistics.median(total_times) * 1000,
        "rss_mb": rss,
        "peak_rss_mb": peak,
    }


def _spec(architecture):
    from ml.preprocessing import InputSpec

    colour, normalization = ("grayscale", "unit") if architecture == "small_cnn" else ("rgb", "symmetric")
    return InputSpec(image_size=SIZES[architecture], color_mode=colour, normalization=normalization)


def measure(runner: str, architecture: str, threads: int, runs: int) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            runner,
            "--architectures",
            architecture,
            "--threads",
            str(threads),
            "--out",
            str(OUT),
        ]
        + ["--runs", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--architectures", default="small_cnn,mobilenet_v2")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="Where the exported models go (default bench/out).")
    parser.add_argument("--smoke", action="store_true", help="small_cnn, 3 runs, a temporary --out.")
    parser.add_argument("--worker", choices=["keras", "litert"], help=argparse.SUPPRESS)
    parser.add_argument("--export", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.out is not None:
        OUT = args.out.resolve()
    architectures = args.architectures.split(",")
    if args.export:
        export(architectures)
        return
    if args.worker:
        print(json.dumps(worker(args.worker, architectures[0], args.threads, args.runs)))
        return
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
            OUT = Path(tmp)
            compare(["small_cnn"], runs=3)
        return
    compare(architectures, args.runs)


def compare(architectures: list[str], runs: int) -> None:
    prepare(architectures)
    print(f"Batch of 5 scans, {runs} timed runs each, one fresh process per row ({os.cpu_count()} CPUs).")
    header = (
        f"{'model':<13} {'runner':<16} {'import s':>8} {'load s':>7} {'median ms':>10} {'p90 ms':>8} "
        f"{'+prep ms':>9} {'RSS MB':>7} {'peak MB':>8}"
    )
    for architecture in architectures:
        print()
        print(header)
        rows = {}
        for label, runner, threads in [
            ("keras", "keras", 0),
            ("litert 1 thread", "litert", 1),
            ("litert 2 threads", "litert", 2),
        ]:
            row = rows[label] = measure(runner, architecture, threads, runs)
            print(
                f"{architecture:<13} {label:<16} {row['import_s']:>8.2f} {row['load_s']:>7.2f} "
                f"{row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} "
                f"{row['median_with_preprocessing_ms']:>9.2f} "
                f"{row['rss_mb']:>7.0f} {row['peak_rss_mb']:>8.0f}"
            )
        keras_row = rows["keras"]
        for label in ("litert 1 thread", "litert 2 threads"):
            row = rows[label]
            print(
                f"  {label}: {keras_row['median_ms'] / row['median_ms']:.1f}x faster than Keras, "
                f"{row['rss_mb'] / keras_row['rss_mb']:.2f} of its memory "
                f"(goal: at least 3x faster, at most 0.20 of the memory)"
            )


if __name__ == "__main__":
    main()
