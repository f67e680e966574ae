"""Every benchmark runs end to end: ``bench/X.py --smoke`` in a subprocess, from the repository root.

The benchmarks are scripts nobody runs every day, so without this they break silently (a changed
service, a new quality gate). ``--smoke`` is each one's tiny mode: small data, few runs, the whole
path. Each makes its own throwaway database and folders (``bench/benchsetup.py``), so no database
fixture is needed here. A few minutes in all on two cores (the dashboard one starts gunicorn and
uses the PostgreSQL on 127.0.0.1:5432 when it answers, SQLite otherwise).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 600  # a shared CI machine can be slow; a hung benchmark still fails

pytestmark = pytest.mark.slow


def run_bench(name: str) -> str:
    result = subprocess.run(
        [sys.executable, f"bench/{name}.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, (
        f"bench/{name}.py --smoke exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )
    return result.stdout


def assert_lines(output: str, *expected: str) -> None:
    for text in expected:
        assert text in output, f"{text!r} not in the output:\n{output}"


def test_training_bench():
    output = run_bench("training")
    assert_lines(
        output,
        "seed epochs train s",
        "ceiling %",
        "gap pts",
        "fixed synthetic evaluation set",
        "summary: 1 seed(s)",
        "smoke run",
    )
    header = output.splitlines().index(next(line for line in output.splitlines() if "seed epochs" in line))
    row = output.splitlines()[header + 1].split()
    assert row[0] == "0" and row[1] == "1", f"expected the row of seed 0 after 1 epoch: {row}"


def test_predict_bench():
    output = run_bench("predict")
    assert_lines(
        output,
        "set-up: trained version #",
        "quality gate",
        "Predict request (test client, end to end)",
        "raw LiteRT on the same batch of 5",
        "median",
        "aim: request <= 1.5 x raw LiteRT + 10 ms",
        "uploaded through the upload view",
        "the same from the full JPEGs (before)",
        "3 runs",
    )


def test_inference_bench():
    output = run_bench("inference")
    assert_lines(
        output, "median ms", "small_cnn     keras", "litert 1 thread", "litert 2 threads", "faster than Keras"
    )


def test_upload_bench():
    output = run_bench("upload")
    assert_lines(
        output, "its CPU", "bare Pillow", "CPU ratio", "upload peak RSS", "peak memory per upload: at most"
    )
    lines = output.splitlines()
    for kind in ("jpeg ", "heic ", "png ", "png-bomb "):
        assert any(line.startswith(kind) for line in lines), f"no row for {kind.strip()}:\n{output}"
    bomb = next(line for line in lines if line.startswith("png-bomb"))
    assert "413: This PNG image has 49.6 megapixels" in bomb


def test_dashboard_bench():
    output = run_bench("dashboard")
    assert_lines(
        output,
        "gunicorn deploy/gunicorn.conf.py, 2 workers, DJANGO_DEBUG=0",
        "dashboard req/s",
        "/healthz req/s",
        "goals: >= 300 req/s with 2 babies",
    )
    rows = [line.split() for line in output.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"], output


def test_abstention_bench():
    output = run_bench("abstention")
    assert_lines(
        output,
        "coverage / accuracy on answered babies",
        "d = off",
        "d = 0.30",
        "disagreement alone declines",
    )


def test_markers_bench():
    output = run_bench("markers")
    assert_lines(output, "20 scans with overlays", "accuracy", "with overlays flagged", "clean scans flagged")


def test_duplicates_bench():
    output = run_bench("duplicates")
    assert_lines(output, "near_duplicate_pairs", "1000 hashes:", "dHash distances on 20", "threshold")
