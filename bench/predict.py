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
Then one parent with one baby and five scans uploaded through the real upload view (Django's
test client, multipart, the crop box the modal sends, week 20): each a different noisy 12 MP phone
JPEG (4032x3024, EXIF orientation 6) cropped to its middle 80 %, so the stored JPEGs are
2419x3226 as a parent's would be. One warm-up request loads the model.

Then, interleaved so a busy machine slows both alike, it prints the medians of:

* the Predict request through Django's test client (POST with session and CSRF middleware, the
  owner lookup, the scans query, reading each scan's model-ready derivative from storage,
  preprocessing, LiteRT, the combined answer, the row saved, the redirect);
* the raw LiteRT call (``LiteRTModel.logits``) on the same, already preprocessed batch;
* for information, preprocessing plus LiteRT without Django, from the stored derivatives and from
  the full stored JPEGs (what every request paid before the derivatives existed).

The aim is at most 1.5 x the raw LiteRT time + 10 ms for the request.

``--smoke`` (60/20/20 babies, 1 epoch, 60 evaluation babies, 3 runs, 1600x1200 photos) checks
the whole path in about a minute; its timings mean little.
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
PHOTO_SIZE = (4032, 3024)  # a 12 MP phone photo, stored sideways (EXIF orientation 6)
SMOKE_PHOTO_SIZE = (1600, 1200)
SCAN_WEEK = 20


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
        run(runs, args.scans, photo_size=SMOKE_PHOTO_SIZE if args.smoke else PHOTO_SIZE)


def phone_photo(size: tuple[int, int], seed: int) -> bytes:
    """A noisy ultrasound-like phone JPEG (bench/upload.py's pixels) with EXIF orientation 6."""
    import io

    import numpy as np
    from PIL import Image

    from bench.upload import phone_pixels

    pixels = phone_pixels(size)
    # Each photo differs (a parent's five scans are five pictures), so none is a duplicate.
    pixels[200:260, 200 + seed * 40 : 240 + seed * 40] = np.uint8(255)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def upload_scans(client, baby, count: int, size: tuple[int, int]) -> None:
    """Through the real upload view, as the crop modal sends them: the middle 80 % of each photo."""
    import io
    import json

    from django.urls import reverse

    oriented_width, oriented_height = size[1], size[0]  # orientation 6 shows it upright
    box = {
        "x": oriented_width // 10,
        "y": oriented_height // 10,
        "width": oriented_width * 8 // 10,
        "height": oriented_height * 8 // 10,
    }
    url = reverse("babies:scan_upload", args=[baby.pk])
    for seed in range(count):
        upload = io.BytesIO(phone_photo(size, seed))
        upload.name = f"IMG_{seed:04d}.jpg"
        response = client.post(
            url,
            {"file": upload, "crop_box": json.dumps(box), "gestational_week": SCAN_WEEK},
            headers={"Accept": "application/json"},
        )
        if response.status_code != 201:
            raise SystemExit(f"upload failed: {response.status_code} {response.content[:300]!r}")


def run(runs: int, scan_count: int, *, photo_size: tuple[int, int]) -> None:
    import datetime

    import numpy as np
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User
    from babies.models import Scan
    from babies.services import baby_create
    from ml.preprocessing import preprocess_image
    from predictions import inference
    from predictions.models import Prediction

    user = User.objects.create_user(email="bench@example.com", password=None)
    baby = baby_create(owner=user, due_date=datetime.date.today() + datetime.timedelta(days=120))
    client = Client()
    client.force_login(user)
    started = time.monotonic()
    upload_scans(client, baby, scan_count, photo_size)
    print(
        f"set-up: {scan_count} photos of {photo_size[0]}x{photo_size[1]} uploaded through the upload view "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    scans = list(Scan.objects.filter(baby=baby).order_by("uploaded_at", "id"))
    if len(scans) != scan_count or any(scan.is_too_early for scan in scans):
        raise SystemExit(
            f"expected {scan_count} usable scans, got weeks {[s.gestational_week for s in scans]}"
        )
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

    def stored(field) -> bytes:
        with field.storage.open(field.name, "rb") as handle:
            return handle.read()

    jpegs = [stored(scan.image) for scan in scans]
    derivatives = [stored(scan.model_input) for scan in scans]
    batch = np.stack([preprocess_image(data, model.spec) for data in derivatives])
    model.runner.logits(batch)  # warm-up at this batch size

    def raw_litert() -> float:
        started = time.perf_counter()
        model.runner.logits(batch)
        return time.perf_counter() - started

    def preprocess_and_litert(sources) -> float:
        started = time.perf_counter()
        model.runner.logits(np.stack([preprocess_image(data, model.spec) for data in sources]))
        return time.perf_counter() - started

    requests, raws, bare, from_jpegs = [], [], [], []
    for _ in range(runs):
        requests.append(request())
        raws.append(raw_litert())
        bare.append(preprocess_and_litert(derivatives))
        from_jpegs.append(preprocess_and_litert(jpegs))

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
        ("the same from the full JPEGs (before)", from_jpegs),
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
