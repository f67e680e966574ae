"""deploy/cron/every.sh (the compose cron service) and its health check, run for real with sh."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.helpers import PYTHON, REPO, wait_for

pytestmark = pytest.mark.slow

EVERY = REPO / "deploy" / "cron" / "every.sh"
HEALTHCHECK = REPO / "deploy" / "cron" / "healthcheck.sh"
JOBS = REPO / "deploy" / "cron" / "jobs.sh"


def start(tmp_path: Path, *command: str, interval: int = 1, job_timeout: int = 30, **env: str):
    environment = {
        "PATH": os.environ["PATH"],
        "CRON_INTERVAL_SECONDS": str(interval),
        "CRON_JOB_TIMEOUT_SECONDS": str(job_timeout),
        "CRON_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
        **env,
    }
    log = (tmp_path / "cron.log").open("w")
    process = subprocess.Popen(
        ["sh", str(EVERY), *command], cwd=REPO, env=environment, stdout=log, stderr=log
    )
    return process, tmp_path / "cron.log", environment


def finish(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=10)


def healthcheck(environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(HEALTHCHECK)], env=environment, capture_output=True, text=True)


def test_runs_at_once_then_every_interval_and_records_a_heartbeat(tmp_path):
    runs, started, gate = tmp_path / "runs", tmp_path / "started", tmp_path / "gate"
    # Each run says it started, then waits for the gate: the test decides when the first run
    # succeeds, so "red until then" is checked while that run is provably still going.
    job = f"touch {started}; while [ ! -e {gate} ]; do sleep 0.01; done; echo run >> {runs}"
    process, log, environment = start(tmp_path, "sh", "-c", job)
    try:
        wait_for(started.exists, timeout=10, what="the first run to start")
        result = healthcheck(environment)
        assert (result.returncode, result.stdout.strip()) == (1, "no successful run yet")
        gate.touch()
        wait_for(
            lambda: runs.exists() and len(runs.read_text().splitlines()) >= 2, timeout=10, what="two runs"
        )
        assert healthcheck(environment).returncode == 0
    finally:
        gate.touch()  # a held run would keep the loop from stopping
        assert finish(process) == 0
    text = log.read_text()
    assert "level=INFO logger=cron message=running every 1s: sh -c" in text
    assert text.count("message=job succeeded in") >= 2
    assert text.rstrip().endswith("message=stopping")


def test_a_failing_job_is_logged_retried_and_turns_the_health_check_red(tmp_path):
    process, log, environment = start(tmp_path, "sh", "-c", "echo boom >&2; exit 3")
    try:
        wait_for(lambda: log.read_text().count("job failed") >= 2, timeout=10, what="two failed runs")
    finally:
        assert finish(process) == 0
    assert "level=ERROR logger=cron message=job failed with exit status 3 after" in log.read_text()
    assert "boom" in log.read_text()
    result = healthcheck(environment)
    assert result.returncode == 1
    assert "no successful run yet" in result.stdout


def test_a_stale_heartbeat_is_unhealthy(tmp_path):
    heartbeat = tmp_path / "heartbeat"
    heartbeat.touch()
    environment = {
        "PATH": os.environ["PATH"],
        "CRON_INTERVAL_SECONDS": "60",
        "CRON_JOB_TIMEOUT_SECONDS": "60",
        "CRON_HEARTBEAT_FILE": str(heartbeat),
    }
    assert healthcheck(environment).returncode == 0
    three_minutes_ago = time.time() - 181  # more than 2 intervals + the job timeout
    os.utime(heartbeat, (three_minutes_ago, three_minutes_ago))
    result = healthcheck(environment)
    assert result.returncode == 1
    assert "last successful run 18" in result.stdout


def test_a_stuck_job_is_killed_after_the_job_timeout(tmp_path):
    process, log, _ = start(tmp_path, "sleep", "30", job_timeout=1, interval=60)
    try:
        wait_for(lambda: "job failed" in log.read_text(), timeout=10, what="the timeout")
    finally:
        assert finish(process) == 0
    assert "job failed with exit status 124" in log.read_text()


def test_sigterm_during_the_pause_stops_at_once(tmp_path):
    process, log, _ = start(tmp_path, "true", interval=3600)
    wait_for(lambda: "job succeeded" in log.read_text(), timeout=10, what="the first run")
    started = time.monotonic()
    assert finish(process) == 0
    assert time.monotonic() - started < 3
    assert "message=stopping" in log.read_text()


def test_sigterm_lets_a_running_job_finish(tmp_path):
    done = tmp_path / "done"
    process, log, _ = start(tmp_path, "sh", "-c", f"sleep 1; touch {done}", interval=3600)
    wait_for(lambda: "running every" in log.read_text(), timeout=10, what="the start")
    time.sleep(0.3)
    assert finish(process) == 0
    assert done.exists()  # the job was not cut off halfway
    assert "job succeeded" in log.read_text()


def test_the_compose_command_runs_a_real_management_command_against_postgres(
    tmp_path, production_env, released
):
    """every.sh in the production environment, as the cron container runs it (here: a command
    that exists in every version of the app; compose runs send_outcome_emails)."""
    process, log, environment = start(
        tmp_path, PYTHON, "manage.py", "showmigrations", "--plan", interval=3600, **production_env
    )
    try:
        wait_for(lambda: "job succeeded" in log.read_text(), timeout=60, what="the management command")
        assert healthcheck(environment).returncode == 0
    finally:
        assert finish(process) == 0
    assert "[X]  accounts.0001_initial" in log.read_text()


def test_the_jobs_all_run_against_postgres_and_succeed(production_env, released):
    """deploy/cron/jobs.sh, as the cron container runs it on every round."""
    result = subprocess.run(["sh", str(JOBS)], cwd=REPO, env=production_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outcome e-mail" in result.stdout.lower()
    assert "File deletions: 0 removed" in result.stdout
    assert "0 file(s) without rows deleted" in result.stdout


def test_a_failing_job_does_not_stop_the_others_but_fails_the_round(tmp_path):
    # A stand-in for python that records each job and fails the file deletions (storage down).
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text(
        f'#!/bin/sh\necho "$2" >> {tmp_path / "ran"}\n[ "$2" != finish_file_deletions ]\n'
    )
    (fake / "python").chmod(0o755)
    environment = {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["sh", str(JOBS)], cwd=REPO, env=environment, capture_output=True, text=True)
    assert result.returncode == 1
    assert "failed: finish_file_deletions" in result.stderr
    assert (tmp_path / "ran").read_text().split() == [
        "send_outcome_emails",
        "finish_file_deletions",
        "reconcile_media",
    ]


def test_the_deploy_shell_scripts_pass_shellcheck():
    from tests.deploy.helpers import BIN, missing

    shellcheck = shutil.which("shellcheck", path=str(BIN)) or shutil.which("shellcheck")
    if not shellcheck:
        missing("shellcheck is not installed (pip install -r requirements-dev.txt)")
    scripts = sorted(str(path) for path in (REPO / "deploy").rglob("*.sh"))
    assert len(scripts) == 4
    # POSIX sh, as the image's /bin/sh (dash) runs them; infos (e.g. "a trap handler is never
    # called directly") are not failures.
    result = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=warning", *scripts], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout
