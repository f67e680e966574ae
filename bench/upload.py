"""Upload benchmark: the whole scan upload request against the bare Pillow work on the same file.

Run from the repository root:  .venv/bin/python bench/upload.py [--runs 7]
                               .venv/bin/python bench/upload.py --smoke   (1 run, small pictures)

Files of the sizes parents send, each uploaded through the real upload view (Django's test client:
multipart body, CSRF/session middleware, validation, verify + decode, orientation, crop, colour
conversion, JPEG, thumbnail and model-input encoding, hashes, four files written, the row saved,
the JSON answer):

* ``jpeg``: a 12-megapixel phone JPEG, noisy, stored sideways with EXIF orientation 6;
* ``heic``: the same picture as HEIC (encoded with pillow-heif);
* ``png``: a 24.9-megapixel RGBA PNG, about the largest colour PNG ``babies.images`` opens
  (``MAX_DECODED_BYTES``);
* ``png-bomb``: a 49.6-megapixel RGBA PNG of about 200 KB (flat colour compresses well), under the
  50 MP header cap; refused from its header (413) before a pixel is decompressed.

For each it prints the median time of the request on the clock and its median CPU time (every
thread: the upload turns the picture and encodes it beside other work in a second thread, so on
an idle core it finishes sooner than its CPU time), the median time of the bare Pillow work on the
same bytes (open, load, exif_transpose, crop, save JPEG, one thread; measured interleaved with the
uploads so a busy machine slows both alike), and the peak resident memory of one request above the process
baseline, measured in a fresh process (Linux: the VmHWM high-water mark is reset through
/proc/self/clear_refs after set-up, then read after the request; this counts Pillow's C buffers,
which tracemalloc does not see). The bound aimed at: no upload above about twice the 12 MP JPEG's.

Everything runs against a temporary SQLite database and MEDIA_ROOT that are deleted afterwards.
They go to /dev/shm when it exists (``--tmp-dir`` to choose): a SQLite commit on a busy shared disk
costs a 20-30 ms fsync that measures the disk, not the upload (production runs PostgreSQL).

``--smoke`` goes through the same steps (every file, every memory probe) with one run and
pictures of a few megapixels: a check that the script works, not figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchsetup import configure_django  # noqa: E402

PHONE_SIZE = (4032, 3024)  # 12.2 megapixels, as a phone stores it (landscape, orientation 6)
SMOKE_SIZE = (1600, 1200)
LARGE_PNG_SIZE = (5760, 4320)  # 24.9 MP: about the largest RGBA PNG babies.images opens (25 MP)
SMOKE_PNG_SIZE = (2000, 1500)
BOMB_SIZE = (8144, 6090)  # 49.6 MP, under the 50 MP header cap, about 200 KB as a PNG
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


def flat_png(size: tuple[int, int]) -> bytes:
    """An RGBA PNG of one dark colour with a lighter block, written row by row (never in memory)."""
    import struct
    import zlib

    width, height = size

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    plain = b"\x00" + bytes((20, 20, 24, 255)) * width
    block = (
        b"\x00" + bytes((20, 20, 24, 255)) * (width // 4) + bytes((200, 200, 200, 255)) * (width - width // 4)
    )
    parts = []
    for row in range(height):
        parts.append(compressor.compress(block if height // 3 < row < height // 2 else plain))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )


def large_png(size: tuple[int, int]) -> bytes:
    """A screenshot-like RGBA PNG: the ultrasound picture with an opaque alpha band."""
    import numpy as np
    from PIL import Image

    rgb = phone_pixels(size)
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    image = Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA")
    del rgb, alpha
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def make_files(workdir: Path, size: tuple[int, int] = PHONE_SIZE, *, smoke: bool = False) -> dict[str, Path]:
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
    del image
    files["png"] = workdir / "screenshot.png"
    files["png"].write_bytes(large_png(SMOKE_PNG_SIZE if smoke else LARGE_PNG_SIZE))
    files["png-bomb"] = workdir / "bomb.png"
    files["png-bomb"].write_bytes(flat_png(BOMB_SIZE))
    return files


# The bomb is refused (413) from its header; everything else is stored (201).
EXPECTED_STATUS = {"png-bomb": 413}


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
@dataclass
class Timing:
    wall: float = 0.0  # seconds on the clock
    cpu: float = 0.0  # seconds of CPU, every thread of this process


@contextlib.contextmanager
def timed():
    timing = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    yield timing
    timing.wall, timing.cpu = time.perf_counter() - wall, time.process_time() - cpu


def bare_pillow(data: bytes, box: dict[str, int]) -> None:
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data))
    image.load()
    image = ImageOps.exif_transpose(image)
    image = image.crop((box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]))
    if image.mode != "RGB":
        image = image.convert("RGB")  # JPEG has no alpha
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

    def upload(self, url: str, data: bytes, name: str, box: dict[str, int], expected: int = 201) -> Timing:
        upload_file = io.BytesIO(data)
        upload_file.name = name
        with timed() as timing:
            response = self.client.post(
                url,
                {"file": upload_file, "crop_box": json.dumps(box)},
                headers={"Accept": "application/json"},
            )
        if response.status_code != expected:
            raise SystemExit(f"upload of {name}: {response.status_code} {response.content[:300]!r}")
        self.last_answer = response.json()
        return timing


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
    import babies.images  # noqa: F401

    gc.collect()
    baseline = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    if what == "upload":
        uploader.upload(url, data, path.name, box, EXPECTED_STATUS.get(kind, 201))
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
        print(
            f"Generating a {size[0] * size[1] / 1e6:.0f} MP phone JPEG and HEIC and two PNGs ...", flush=True
        )
        files = make_files(workdir, size, smoke=args.smoke)
        uploader = Uploader()
        print(
            f"{'file':<9} {'pixels':>7} {'size':>8} {'runs':>4} {'upload':>8} {'its CPU':>8}"
            f" {'bare Pillow':>12}"
            f" {'ratio':>6} {'CPU ratio':>9} {'upload peak RSS':>16} {'bare peak RSS':>14}  answer"
        )
        peaks = {}
        for kind, path in files.items():
            data = path.read_bytes()
            box = crop_box_for(data)
            expected = EXPECTED_STATUS.get(kind, 201)
            megapixels = _pixels(data) / 1e6
            # One warm-up (imports, first-use allocations), then interleaved runs. A file the app
            # refuses has no bare Pillow work to compare with (decoding it is what is refused).
            compare = expected == 201
            if compare:
                bare_pillow(data, box)
            uploader.upload(uploader.new_upload_url(), data, path.name, box, expected)
            uploads, bares = [], []
            for _ in range(runs):
                if compare:
                    with timed() as timing:
                        bare_pillow(data, box)
                    bares.append(timing)
                uploads.append(uploader.upload(uploader.new_upload_url(), data, path.name, box, expected))
            answer = uploader.last_answer
            upload_ms = statistics.median(timing.wall for timing in uploads) * 1000
            upload_cpu_ms = statistics.median(timing.cpu for timing in uploads) * 1000
            memory = measure_memory(kind, path, "upload")
            peaks[kind] = memory["peak_above_mib"]
            if compare:
                bare_ms = statistics.median(timing.wall for timing in bares) * 1000
                bare_cpu_ms = statistics.median(timing.cpu for timing in bares) * 1000
                bare_memory = measure_memory(kind, path, "bare")
                bare = (
                    f"{bare_ms:>9.0f} ms {upload_ms / bare_ms:>5.2f}x {upload_cpu_ms / bare_cpu_ms:>8.2f}x"
                    f" {memory['peak_above_mib']:>12.0f} MiB {bare_memory['peak_above_mib']:>10.0f} MiB"
                )
                outcome = f"stored {answer['width']}x{answer['height']}"
            else:
                bare = f"{'-':>12} {'-':>6} {'-':>9} {memory['peak_above_mib']:>12.0f} MiB {'-':>14}"
                outcome = f"{expected}: {answer.get('error', '')[:60]}..."
            print(
                f"{kind:<9} {megapixels:>5.1f}MP {len(data) / 1e6:>6.2f}MB {runs:>4} {upload_ms:>5.0f} ms"
                f" {upload_cpu_ms:>5.0f} ms {bare}  {outcome}",
                flush=True,
            )
        reference = peaks["jpeg"]
        worst_kind = max(peaks, key=peaks.get)
        print(
            f"\npeak memory per upload: at most {peaks[worst_kind]:.0f} MiB ({worst_kind}), "
            f"{peaks[worst_kind] / reference:.2f}x the phone JPEG's {reference:.0f} MiB "
            "(aim: about 2x or less)"
        )
        print(
            f"\nJPEG and HEIC {size[0]}x{size[1]} stored with EXIF orientation 6, cropped to the middle 80 %;"
            f" database and media in {Path(tmp).parent}."
            "\nupload = the whole request through Django's test client (one new baby per upload), on the"
            "\n  clock; its CPU = CPU time of every thread (the upload turns and encodes in two threads);"
            "\nbare Pillow = open, load, exif_transpose, crop, save JPEG on the same bytes, one thread;"
            "\npeak RSS = high-water mark of one request above the process baseline, in a fresh process."
        )


def _pixels(data: bytes) -> int:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the header only: the app applies its own caps
    with Image.open(io.BytesIO(data)) as image:
        return image.width * image.height


if __name__ == "__main__":
    main()
