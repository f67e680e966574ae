"""Prediction benchmark: the whole Predict request against the bare LiteRT call on the same batch.

Run from the repository root:  .venv/bin/python bench/predict.py [--runs 31] [--scans 5] [--db-on-disk]
                               .venv/bin/python bench/predict.py --smoke   (3 runs, tiny model)

Set-up (not timed): a temporary SQLite database, MEDIA_ROOT and evaluation-set folder (on
/dev/shm when it exists: SQLite's commit waits for an fsync, 5-15 ms on a container's overlay
disk, which measures the disk rather than the code and is not what PostgreSQL pays in
production; ``--db-on-disk`` puts them in the normal temporary folder to see that cost too);
a small synthetic data set (120/40/40 babies) and the demo recipe's small CNN trained on it for
a couple of epochs by ``manage.py train_model`` in a child process (TensorFlow never enters
this process, as in a web worker). Such a model is about as good as a coin flip, so the
quality gate (``ml.gate``) usually refuses it: it is then switched on with
``manage.py activate_model ID --override-gate --reason "benchmark: measures speed, not
accuracy"`` (the override and the gate's verdict are printed and audited in the throwaway
database). Its answers are not what is measured here, only how long they take. The fixed
evaluation set the model is measured on is kept small (300 babies) for the same reason.
Then one parent with one baby whose scans are synthetic images uploaded through
``synthetic_babies_create`` (``scan_create``), all at usable gestational weeks (from
``PREDICTION_MIN_GESTATIONAL_WEEK`` on), so every scan goes to the model. One warm-up request
loads the model.

Then, interleaved so a busy machine slows both alike, it prints the medians of:

* the Predict request through Django's test client (POST with session and CSRF middleware, the
  owner lookup, the scans query, reading the JPEGs from storage, preprocessing, LiteRT, the
  combined answer, the row saved, the redirect);
* the raw LiteRT call (``LiteRTModel.logits``) on the same, already preprocessed batch;
* for information, preprocessing plus LiteRT without Django.

The aim is at most 1.5 x the raw LiteRT time + 10 ms for the request.

``--smoke`` (60/20/20 babies, 1 epoch, 60 evaluation babies, 3 runs) checks the whole path in
well under a minute; its timings mean little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchsetup import configure_django, manage, train_small_demo_model  # noqa: E402

BENCH_BABIES = {"train": 120, "val": 40, "test": 40}
BENCH_EPOCHS = 2
BENCH_EVALUATION_BABIES = 300
SMOKE_BABIES = {"train": 60, "val": 20, "test": 20}
SMOKE_EVALUATION_BABIES = 60
OVERRIDE_REASON = "benchmark: measures speed, not accuracy"


def train_demo_model(workdir: Path, *, babies: dict[str, int], epochs: int) -> None:
    """The demo recipe, small: train_model in a child process, then activate_model in another.

    The gate's verdict is printed; a refusal (expected for so small a model) is overridden with
    a reason, which is what an operator would have to do too.
    """
    from predictions.services import model_version_gate

    version = train_small_demo_model(
        workdir, babies=babies, epochs=epochs, name="Synthetic demo model (predict benchmark)"
    )
    verdict = model_version_gate(version)
    if verdict.passed:
        manage("activate_model", str(version.pk), "--reason", "benchmark")
        print("set-up: it passes the quality gate and was activated")
    else:
        manage("activate_model", str(version.pk), "--override-gate", "--reason", OVERRIDE_REASON)
        print(f"set-up: the quality gate refused it: {verdict.message}")
        print(f'set-up: activated anyway with --override-gate --reason "{OVERRIDE_REASON}"')


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--scans", type=int, default=5)
    parser.add_argument("--db-on-disk", action="store_true", help="Not on /dev/shm (see above).")
    parser.add_argument("--smoke", action="store_true", help="Tiny model, 3 runs: checks the whole path.")
    args = parser.parse_args()
    runs = 3 if args.smoke else args.runs

    shm = Path("/dev/shm")
    on_tmpfs = not args.db_on_disk and shm.is_dir() and os.access(shm, os.W_OK)
    with tempfile.TemporaryDirectory(prefix="bench-predict-", dir=shm if on_tmpfs else None) as tmp:
        workdir = Path(tmp)
        print(f"set-up: SQLite database and MEDIA_ROOT in {workdir} ({'tmpfs' if on_tmpfs else 'disk'})")
        evaluation_babies = SMOKE_EVALUATION_BABIES if args.smoke else BENCH_EVALUATION_BABIES
        os.environ["MODEL_EVALUATION_BABIES"] = str(evaluation_babies)
        configure_django(workdir)
        train_demo_model(
            workdir,
            babies=SMOKE_BABIES if args.smoke else BENCH_BABIES,
            epochs=1 if args.smoke else BENCH_EPOCHS,
        )
        run(runs, args.scans)


def run(runs: int, scan_count: int) -> None:
    import numpy as np
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User
    from babies.models import Baby, Scan
    from ml.preprocessing import preprocess_image
    from ml.synthetic import SyntheticConfig
    from predictions import inference
    from predictions.models import Prediction
    from predictions.services import synthetic_babies_create

    user = User.objects.create_user(email="bench@example.com", password=None)
    # Every scan at a usable week, so the whole batch goes to the model (earlier weeks are gated out).
    usable = SyntheticConfig(min_gestational_week=settings.PREDICTION_MIN_GESTATIONAL_WEEK)
    synthetic_babies_create(owner=user, babies=1, scans_per_baby=scan_count, seed=11, config=usable)
    baby = Baby.objects.get(owner=user)
    scans = list(Scan.objects.filter(baby=baby).order_by("uploaded_at", "id"))
    if len(scans) != scan_count or any(scan.is_too_early for scan in scans):
        raise SystemExit(
            f"expected {scan_count} usable scans, got weeks {[s.gestational_week for s in scans]}"
        )
    client = Client()
    client.force_login(user)
    url = reverse("predictions:predict", args=[baby.pk])

    def request() -> float:
        started = time.perf_counter()
        response = client.post(url)
        elapsed = time.perf_counter() - started
        if response.status_code != 302:
            raise SystemExit(f"predict failed: {response.status_code}")
        # A browser follows the redirect and the page shows (and so removes) the message; without
        # that, messages would pile up in the cookie and every request would re-sign them all.
        client.cookies.pop("messages", None)
        return elapsed

    request()  # warm-up: loads the interpreter, as the first request of a worker does
    prediction = Prediction.objects.latest("created_at")
    if prediction.scan_errors or len(prediction.scan_ids_used) != scan_count:
        raise SystemExit(f"unexpected prediction: {prediction.scan_errors}")
    model = inference.loaded_model()
    jpegs = []
    for scan in scans:
        with scan.image.storage.open(scan.image.name, "rb") as handle:
            jpegs.append(handle.read())
    batch = np.stack([preprocess_image(data, model.spec) for data in jpegs])
    model.runner.logits(batch)  # warm-up at this batch size

    def raw_litert() -> float:
        started = time.perf_counter()
        model.runner.logits(batch)
        return time.perf_counter() - started

    def preprocess_and_litert() -> float:
        started = time.perf_counter()
        model.runner.logits(np.stack([preprocess_image(data, model.spec) for data in jpegs]))
        return time.perf_counter() - started

    requests, raws, bare = [], [], []
    for _ in range(runs):
        requests.append(request())
        raws.append(raw_litert())
        bare.append(preprocess_and_litert())

    version = model.model_version
    sizes = sorted({(scan.width, scan.height) for scan in scans})
    print(
        f"model: {version.name} ({version.architecture}, input {model.spec.image_size} px "
        f"{model.spec.color_mode}), {settings.INFERENCE_NUM_THREADS} LiteRT thread(s); "
        f"baby with {scan_count} scans of {', '.join(f'{w}x{h}' for w, h in sizes)} px; {runs} runs"
    )
    lines = [
        ("Predict request (test client, end to end)", requests),
        (f"raw LiteRT on the same batch of {scan_count}", raws),
        ("preprocessing + LiteRT, no Django", bare),
    ]
    for label, values in lines:
        print(f"{label:<42} median {median_ms(values):7.2f} ms (fastest {min(values) * 1000:.2f} ms)")
    request_ms, raw_ms = median_ms(requests), median_ms(raws)
    budget_ms = 1.5 * raw_ms + 10
    verdict = "within" if request_ms <= budget_ms else "OVER"
    print(
        f"aim: request <= 1.5 x raw LiteRT + 10 ms = {budget_ms:.2f} ms -> {verdict} "
        f"(request - raw LiteRT = {request_ms - raw_ms:.2f} ms)"
    )


if __name__ == "__main__":
    main()
