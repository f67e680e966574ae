"""SMTP faults, injected for real: ``send_outcome_emails`` against a port that refuses connections,
a server that accepts and never answers, and a server that refuses one recipient.

The command runs as cron runs it (``run_from_argv``: the real exit status and stderr), with
Django's SMTP backend talking to sockets on 127.0.0.1. After each fault the real SMTP server
below comes back and the next run must mail every parent exactly once.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import socketserver
import subprocess
import sys
import threading
import time

import pytest
from django.core.management import load_command_class
from django.utils import timezone

from accounts.tests.factories import UserFactory
from babies.tests.factories import BabyFactory
from predictions.models import OutcomeRequest
from predictions.services import prediction_create
from predictions.tests.predict_support import grey_scan, tiny_model_version
from tests.fresh_process import REPO

pytestmark = pytest.mark.django_db

EMAIL_TIMEOUT = 1.0


# --- The SMTP server and the faulty sockets ---------------------------------------------------------
class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend: EHLO, MAIL, RCPT, DATA, RSET, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        server: SMTPServer = self.server
        self.reply("220 faults.test ESMTP")
        recipients: list[str] = []
        while line := self.rfile.readline():
            command = line.decode(errors="replace").strip()
            verb = command[:4].upper()
            if verb in {"EHLO", "HELO"}:
                self.reply("250 faults.test")
            elif verb == "MAIL":
                recipients = []
                self.reply("250 2.1.0 OK")
            elif verb == "RCPT":
                address = command.split(":", 1)[1].strip().strip("<>")
                if address in server.refused:
                    self.reply(f"550 5.1.1 <{address}>: Recipient address rejected")
                else:
                    recipients.append(address)
                    self.reply("250 2.1.5 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                body = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    body.append(data)
                with server.lock:
                    server.messages.append((list(recipients), b"".join(body)))
                self.reply("250 2.0.0 queued")
            elif verb == "RSET":
                recipients = []
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("502 5.5.2 not implemented")


class SMTPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, refused: set[str] = frozenset()):
        self.messages: list[tuple[list[str], bytes]] = []
        self.refused = set(refused)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _SMTPHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def recipients(self) -> list[str]:
        return sorted(address for recipients, _ in self.messages for address in recipients)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class RefusingPort:
    """A port bound on 127.0.0.1 but not listening: every connection is refused (RST)."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]

    def stop(self) -> None:
        self.socket.close()


class HangingServer:
    """Accepts connections and never sends a byte (not even the 220 greeting)."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return  # closed by stop()
            self.accepted.append(connection)

    def stop(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would leave it listening.
        with contextlib.suppress(OSError):  # already stopped
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        for connection in self.accepted:
            connection.close()
        self.thread.join(timeout=5)


@pytest.fixture
def smtp_settings(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = EMAIL_TIMEOUT
    return settings


@pytest.fixture
def faults():
    """Everything a test starts is stopped, whatever happens."""
    started = []
    yield started
    for thing in reversed(started):
        thing.stop()


# --- Babies and the command ------------------------------------------------------------------------
@pytest.fixture
def due_babies(db):
    tiny_model_version()
    babies = []
    for number in range(3):
        baby = BabyFactory(
            owner=UserFactory(email=f"parent{number}@faults.test"),
            due_date=timezone.localdate() - datetime.timedelta(days=10),
        )
        grey_scan(baby, 40)
        prediction_create(baby=baby)
        babies.append(baby)
    return babies


def cron_run(capsys, monkeypatch, *args) -> tuple[int, str, str, float]:
    """``manage.py send_outcome_emails`` as cron runs it: exit status, stdout, stderr, seconds."""
    # run_from_argv closes every database connection when it ends; the test's transaction must live.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    command = load_command_class("predictions", "send_outcome_emails")
    capsys.readouterr()
    started = time.monotonic()
    try:
        command.run_from_argv(["manage.py", "send_outcome_emails", *args])
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    return status, captured.out, captured.err, elapsed


def assert_nothing_counted_or_held(babies) -> None:
    requests = OutcomeRequest.objects.filter(baby__in=babies)
    assert not requests.filter(sent_at__isnull=False).exists()
    assert not requests.filter(attempts__gt=0).exists()
    assert not requests.filter(claimed_at__isnull=False).exists()


def assert_no_address(*texts: str) -> None:
    for text in texts:
        assert "@faults.test" not in text


def assert_everyone_mailed_once(server: SMTPServer, babies) -> None:
    assert server.recipients() == sorted(baby.owner.email for baby in babies)
    assert OutcomeRequest.objects.filter(baby__in=babies, sent_at__isnull=False).count() == len(babies)


# --- The faults --------------------------------------------------------------------------------------
def test_email_timeout_comes_from_the_environment_with_a_default():
    def email_timeout(**env) -> str:
        result = subprocess.run(
            [sys.executable, "-c", "from django.conf import settings; print(settings.EMAIL_TIMEOUT)"],
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "instagender.settings", **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert email_timeout() == "10.0"
    assert email_timeout(EMAIL_TIMEOUT="2.5") == "2.5"


@pytest.mark.slow
def test_smtp_refusing_connections_for_a_day_loses_no_email(
    smtp_settings, due_babies, faults, capsys, monkeypatch
):
    refusing = RefusingPort()
    faults.append(refusing)
    smtp_settings.EMAIL_PORT = refusing.port

    # A day of hourly cron runs against a server that refuses every connection.
    for _ in range(24):
        status, out, err, elapsed = cron_run(capsys, monkeypatch)
        assert status == 1
        assert "could not take mail: ConnectionRefusedError" in err
        assert "Stopped after 0 sent; 3 waiting e-mail(s) were not sent" in err
        assert "No attempt was counted against their recipients." in err
        assert elapsed < 5
        assert_no_address(out, err)
    assert_nothing_counted_or_held(due_babies)
    dry_status, dry_out, _, _ = cron_run(capsys, monkeypatch, "--dry-run")
    assert dry_status == 0
    assert all(f"would send: baby {baby.pk}," in dry_out for baby in due_babies)

    # The server comes back on the same port.
    refusing.stop()
    server = SMTPServer(smtp_settings.EMAIL_PORT)
    faults.append(server)
    status, out, err, _ = cron_run(capsys, monkeypatch)
    assert status == 0, err
    assert "Outcome e-mails: 3 sent, 0 failed, 0 skipped" in out
    assert_everyone_mailed_once(server, due_babies)
    assert cron_run(capsys, monkeypatch)[0] == 0  # and never again
    assert_everyone_mailed_once(server, due_babies)


def test_smtp_hanging_ends_the_run_within_email_timeout_and_loses_no_email(
    smtp_settings, due_babies, faults, capsys, monkeypatch
):
    hanging = HangingServer()
    faults.append(hanging)
    smtp_settings.EMAIL_PORT = hanging.port

    status, out, err, elapsed = cron_run(capsys, monkeypatch)

    assert status == 1
    # One operation timed out and the run stopped: not one timeout per parent, not cron's timeout.
    assert EMAIL_TIMEOUT <= elapsed < 3 * EMAIL_TIMEOUT + 2
    assert len(hanging.accepted) == 1
    assert "could not take mail: SMTPServerDisconnected: Connection unexpectedly closed: timed out" in err
    assert "(no answer within EMAIL_TIMEOUT, 1 s)" in err
    assert "Stopped after 0 sent; 3 waiting e-mail(s) were not sent" in err
    assert_no_address(out, err)
    assert_nothing_counted_or_held(due_babies)

    hanging.stop()
    server = SMTPServer(smtp_settings.EMAIL_PORT)
    faults.append(server)
    status, out, err, _ = cron_run(capsys, monkeypatch)
    assert status == 0, err
    assert_everyone_mailed_once(server, due_babies)
    assert cron_run(capsys, monkeypatch)[0] == 0
    assert_everyone_mailed_once(server, due_babies)


def test_a_recipient_refused_by_the_server_counts_only_against_that_baby(
    smtp_settings, due_babies, faults, capsys, monkeypatch
):
    refused_baby, *others = due_babies
    port = RefusingPort()
    port.stop()  # only to pick a free port
    server = SMTPServer(port.port, refused={refused_baby.owner.email})
    faults.append(server)
    smtp_settings.EMAIL_PORT = server.server_address[1]

    status, out, err, _ = cron_run(capsys, monkeypatch)

    assert status == 1
    assert f"refused: baby {refused_baby.pk}" in err and "550 5.1.1" in err
    assert "2 sent, 1 failed" in err
    assert_no_address(out, err)
    assert server.recipients() == sorted(baby.owner.email for baby in others)
    request = OutcomeRequest.objects.get(baby=refused_baby)
    assert (request.attempts, request.sent_at, request.claimed_at) == (1, None, None)

    # The mailbox is fixed: the next run sends it, and nobody gets a second e-mail.
    server.refused.clear()
    status, _, err, _ = cron_run(capsys, monkeypatch)
    assert status == 0, err
    assert_everyone_mailed_once(server, due_babies)
