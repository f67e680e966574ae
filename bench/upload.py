"""Upload benchmark: the whole scan upload request against the bare Pillow work on the same file.

Run from the repository root:  .venv/bin/python bench/upload.py [--runs 7]
                               .venv/bin/python bench/upload.py --smoke   (1 run, a 2 MP picture)

For a 12-megapixel phone JPEG (stored sideways with EXIF orientation 6, like a phone's) and for
the same picture as HEIC (encoded with pillow-heif), it prints:

* the median time of the whole upload request through Django's test client (multipart body,
  CSRF/session middleware, validation, verify + decode, orientation, crop, colour conversion,
  JPEG and thumbnail encoding, hashes, three files written, the row saved, the JSON answer);
* the median time of the bare Pillow work on the same bytes in the same run (open, load,
  exif_transpose, crop, save JPEG at the same quality), measured interleaved with the uploads so
  that a busy machine slows both alike;
* the peak resident memory of one upload above the process baseline, measured in a fresh
  process (Linux: the VmHWM high-water mark is reset after set-up, then read after the request).

Everything runs against a temporary SQLite database and MEDIA_ROOT that are deleted afterwards.
They go to /dev/shm when it exists (``--tmp-dir`` to choose): a SQLite commit on a busy shared disk
costs a 20-30 ms fsync that measures the disk, not the upload (production runs PostgreSQL).

``--smoke`` goes through the same steps (both files, both memory probes) with one run and a
1600x1200 picture instead of 12 MP, in about 15 s: a check that the script works, not figures.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchsetup import configure_django  # noqa: E402

PHONE_SIZE = (4032, 3024)  # 12.2 megapixels, as a phone stores it (landscape, orientation 6)
SMOKE_SIZE = (1600, 1200)
JPEG_QUALITY = 90  # the same quality babies.images uses


# --- Test files -----------------------------------------------------------------------------
def phone_pixels(size: tuple[int, int] = PHONE_SIZE):
    """Ultrasound-like content: a bright sector with speckle, the rest dark, some colour text."""
    import numpy as np

    width, height = size
    rng = np.random.default_rng(42)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot(x - width / 2, y)
    angle = np.arctan2(x - width / 2, y + 1)
    sector = (radius < height * 0.95) & (np.abs(angle) < 0.75)
    blob = 110 * np.exp(
        -(((x - width * 0.5) / (width * 0.15)) ** 2 + ((y - height * 0.55) / (height * 0.2)) ** 2)
    )
    speckle = rng.gamma(2.0, 28.0, size=(height, width)).astype(np.float32)
    grey = np.clip((speckle * 0.7 + blob) * sector, 0, 255).astype(np.uint8)
    rgb = np.stack([grey, grey, np.clip(grey.astype(np.int16) + 6, 0, 255).astype(np.uint8)], axis=-1)
    rgb[40:120, 60 : min(900, width - 60)] = (230, 200, 40)  # a caption bar, as photos of a monitor have
    return rgb


def make_files(workdir: Path, size: tuple[int, int] = PHONE_SIZE) -> dict[str, Path]:
    import pillow_heif
    from PIL import Image

    image = Image.fromarray(phone_pixels(size))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise, like a phone held upright
    exif[0x010F] = "BenchPhone"
    files = {}
    jpeg = io.BytesIO()
    image.save(jpeg, "JPEG", quality=92, exif=exif.tobytes())
    files["jpeg"] = workdir / "phone.jpg"
    files["jpeg"].write_bytes(jpeg.getvalue())
    heic = io.BytesIO()
    pillow_heif.from_pillow(image).save(heic, quality=80)
    files["heic"] = workdir / "phone.heic"
    files["heic"].write_bytes(heic.getvalue())
    return files


def oriented_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    orientation = image.getexif().get(0x0112, 1)
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def crop_box_for(data: bytes) -> dict[str, int]:
    """The middle 80 % of the oriented picture: a parent framing the baby."""
    width, height = oriented_size(data)
    return {"x": width // 10, "y": height // 10, "width": width * 8 // 10, "height": height * 8 // 10}


# --- The two things measured ----------------------------------------------------------------
def bare_pillow(data: bytes, box: dict[str, int]) -> None:
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data))
    image.load()
    image = ImageOps.exif_transpose(image)
    image = image.crop((box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]))
    image.save(io.BytesIO(), "JPEG", quality=JPEG_QUALITY)


class Uploader:
    """A logged-in test client and a fresh baby per upload (so no upload is a duplicate)."""

    def __init__(self):
        from django.test import Client

        from accounts.models import User

        self.user = User.objects.create_user(email=f"bench{time.time_ns()}@example.com", password=None)
        self.client = Client()
        self.client.force_login(self.user)

    def new_upload_url(self) -> str:
        import datetime

        from django.urls import reverse

        from babies.services import baby_create

        baby = baby_create(owner=self.user, due_date=datetime.date.today() + datetime.timedelta(days=100))
        return reverse("babies:scan_upload", args=[baby.pk])

    def upload(self, url: str, data: bytes, name: str, box: dict[str, int]) -> float:
        upload_file = io.BytesIO(data)
        upload_file.name = name
        started = time.perf_counter()
        response = self.client.post(
            url,
            {"file": upload_file, "crop_box": json.dumps(box)},
            headers={"Accept": "application/json"},
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise SystemExit(f"upload failed: {response.status_code} {response.content[:300]!r}")
        return elapsed


# --- Memory (in a fresh process) ------------------------------------------------------------
def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(kind: str, path: Path, what: str) -> None:
    """Child process: set up, reset the high-water mark, do one upload (or bare run), report."""
    with tempfile.TemporaryDirectory(prefix="bench-upload-mem-") as tmp:
        _memory_probe(kind, path, what, Path(tmp))


def _memory_probe(kind: str, path: Path, what: str, workdir: Path) -> None:
    configure_django(workdir)
    data = path.read_bytes()
    box = crop_box_for(data)
    uploader = Uploader()
    url = uploader.new_upload_url()
    # Every import happens before the baseline.
    import imagehash  # noqa: F401

    import babies.images  # noqa: F401

    gc.collect()
    baseline = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    if what == "upload":
        uploader.upload(url, data, f"phone.{kind}", box)
    else:
        bare_pillow(data, box)
    peak = _rss_kib("VmHWM")
    print(json.dumps({"baseline_mib": baseline / 1024, "peak_above_mib": (peak - baseline) / 1024}))


def measure_memory(kind: str, path: Path, what: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--memory-probe", kind, str(path), what],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- Main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per file (after one warm-up)")
    parser.add_argument(
        "--tmp-dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,  # noqa: S108
        help="where the temporary database and media go (default: /dev/shm if present)",
    )
    parser.add_argument("--smoke", action="store_true", help="1 run on a 1600x1200 picture: checks the path.")
    parser.add_argument("--memory-probe", nargs=3, metavar=("KIND", "PATH", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        kind, path, what = args.memory_probe
        memory_probe(kind, Path(path), what)
        return
    runs = 1 if args.smoke else args.runs
    size = SMOKE_SIZE if args.smoke else PHONE_SIZE

    with tempfile.TemporaryDirectory(prefix="bench-upload-", dir=args.tmp_dir) as tmp:
        workdir = Path(tmp)
        configure_django(workdir)
        print(f"Generating a {size[0] * size[1] / 1e6:.0f} MP phone JPEG and HEIC ...", flush=True)
        files = make_files(workdir, size)
        uploader = Uploader()
        print(
            f"{'file':<6} {'size':>8} {'runs':>4} {'upload median':>14} {'bare Pillow':>12} {'ratio':>6}"
            f" {'upload peak RSS':>16} {'bare peak RSS':>14}"
        )
        for kind, path in files.items():
            data = path.read_bytes()
            box = crop_box_for(data)
            # One warm-up of each (imports, first-use allocations), then interleaved runs.
            bare_pillow(data, box)
            uploader.upload(uploader.new_upload_url(), data, path.name, box)
            upload_times, bare_times = [], []
            for _ in range(runs):
                started = time.perf_counter()
                bare_pillow(data, box)
                bare_times.append(time.perf_counter() - started)
                upload_times.append(uploader.upload(uploader.new_upload_url(), data, path.name, box))
            upload_ms = statistics.median(upload_times) * 1000
            bare_ms = statistics.median(bare_times) * 1000
            memory = measure_memory(kind, path, "upload")
            bare_memory = measure_memory(kind, path, "bare")
            print(
                f"{kind:<6} {len(data) / 1e6:>6.1f}MB {runs:>4} {upload_ms:>11.0f} ms {bare_ms:>9.0f} ms"
                f" {upload_ms / bare_ms:>5.2f}x {memory['peak_above_mib']:>12.0f} MiB"
                f" {bare_memory['peak_above_mib']:>10.0f} MiB",
                flush=True,
            )
        print(
            f"\n{size[0]}x{size[1]} stored with EXIF orientation 6, cropped to the middle 80 %;"
            f" database and media in {Path(tmp).parent}."
            "\nupload = the whole request through Django's test client (one new baby per upload);"
            "\nbare Pillow = open, load, exif_transpose, crop, save JPEG on the same bytes;"
            "\npeak RSS = high-water mark of one request above the process baseline, in a fresh process."
        )


if __name__ == "__main__":
    main()
