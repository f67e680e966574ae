"""Files and their rows stay together: every private file is written and deleted through here.

A row and its files must exist together or not at all, also when the storage is read-only or
full, when a worker is killed half-way through an upload, or when a caller's transaction rolls
back. One table, ``FileDeletion``, is the ledger that makes it so:

* **Deleting.** :func:`delete_on_commit` records each file in the ledger inside the transaction
  that deletes its rows, and removes the files once that commits. A file the storage refuses to
  remove stays in the ledger with the error; ``manage.py finish_file_deletions`` (cron) retries
  it until it is gone. Once the row is gone, the entry is what guarantees the file goes.
* **Writing.** :meth:`PendingFiles.save` records the name it is about to write as an *upload
  reservation* before the first byte is written (committed at once when the caller is not inside
  a transaction, as in a web request), and the reservation is dropped when the row commits. A
  worker killed in between, or a disk that fills up half-way through a file, leaves a reservation
  that cron turns into a deletion once it is an hour old.
* **Reconciling.** :func:`reconcile` walks every storage a ``FileField`` uses and compares it with
  the rows, both ways: a file no row uses and no ledger entry knows (e.g. written inside a
  caller's transaction that rolled back) is deleted once it is older than a grace period; a row
  whose file is missing is recorded in ``MissingFile`` for staff (``manage.py reconcile_media``).

Nothing here deletes a file that a row uses: every deletion checks every ``FileField`` first, so
a reservation whose row did commit (the worker died before it could drop the reservation) keeps
its file. The models and fields are found through the app registry, so a new ``FileField``
needs nothing special to be covered.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import posixpath
from collections.abc import Iterable, Iterator

from django.apps import apps
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import DatabaseError, models, transaction
from django.utils import timezone

from babies.models import FileDeletion, MissingFile

logger = logging.getLogger(__name__)

File = tuple[str, str]  # (storage alias, name)

# Longer than any request may take (gunicorn's timeout is 60 s) plus the time a caller's own
# transaction may stay open after it (a training-set freeze): an upload younger than this may
# still commit its row, so its files are left alone.
UPLOAD_RESERVATION_SECONDS = 3600
# A file without row and without ledger entry is deleted only once it is this old: it may be
# written inside a transaction that has not committed yet (a long command, a model's files).
ORPHAN_GRACE_SECONDS = 24 * 3600


# What a parent is told when the rows are gone but the storage refused to erase the files just
# now: the truth (the files still exist, nothing can show them, the ledger will erase them).
FILES_PENDING_MESSAGE = (
    "Our storage could not erase its files just now: no page can show them any more, and we keep "
    "retrying automatically until they are erased (usually within the hour)."
)


class StorageUnavailable(Exception):
    """Storage refused to store a file (full, read-only, unreachable); nothing was kept."""

    message = (
        "We could not store your scan just now, so nothing was saved. Please try again in a few minutes."
    )
    status_code = 503

    def __str__(self) -> str:
        return self.message


# --- Which storages and fields hold files -------------------------------------------------
def storage_alias(storage) -> str:
    """The ``STORAGES`` alias of a storage object (or of a storage callable)."""
    if callable(storage):
        storage = storage()
    for alias in settings.STORAGES:
        if alias != "staticfiles" and storages[alias] is storage:
            return alias
    raise LookupError(f"{storage!r} is not one of the configured STORAGES")


def file_fields() -> dict[str, list[tuple[type[models.Model], str]]]:
    """Every concrete ``FileField`` of every installed model, grouped by storage alias."""
    found: dict[str, list[tuple[type[models.Model], str]]] = {}
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.local_concrete_fields:
            if isinstance(field, models.FileField):
                storage = getattr(field, "_storage_callable", None) or field.storage
                found.setdefault(storage_alias(storage), []).append((model, field.name))
    return found


def is_used(alias: str, name: str) -> bool:
    """Whether any row's ``FileField`` on that storage names this file."""
    return any(
        model._base_manager.filter(**{field: name}).exists() for model, field in file_fields().get(alias, [])
    )


# --- Deleting -----------------------------------------------------------------------------
@dataclasses.dataclass
class FileRemoval:
    """Files whose rows are being deleted; ``complete`` once every one of them is gone.

    The service returns it at once; the removal runs when the deletion commits, so by the time
    the caller (a view, outside any transaction) reads ``complete`` the answer is known.
    """

    entry_ids: list[int] = dataclasses.field(default_factory=list)
    remaining: int | None = None  # None until the removal has run

    @property
    def complete(self) -> bool:
        return self.remaining == 0

    def run(self) -> None:
        result = deletions_process(ids=self.entry_ids)
        self.remaining = result.failed

    @classmethod
    def combine(cls, removals: Iterable[FileRemoval]) -> FileRemoval:
        removals = list(removals)
        combined = cls(entry_ids=[pk for removal in removals for pk in removal.entry_ids])
        if all(removal.remaining is not None for removal in removals):
            combined.remaining = sum(removal.remaining for removal in removals)
        return combined


def delete_on_commit(files: Iterable[File], *, reason: str = FileDeletion.Reason.DELETED) -> FileRemoval:
    """Record ``files`` for deletion in the current transaction; remove them once it commits.

    Call it in the transaction that deletes the rows: if that rolls back, so does the record,
    and the files stay with their rows.
    """
    now = timezone.now()
    entries = [
        FileDeletion(storage=alias, name=name, reason=reason, due_at=now, created_at=now)
        for alias, name in dict.fromkeys(files)
        if name
    ]
    removal = FileRemoval()
    if not entries:
        removal.remaining = 0
        return removal
    removal.entry_ids = [entry.pk for entry in FileDeletion.objects.bulk_create(entries)]
    # robust: the rows are gone either way; a failure here leaves the entries to cron.
    transaction.on_commit(removal.run, robust=True)
    return removal


@dataclasses.dataclass
class ProcessResult:
    removed: int = 0
    kept: int = 0
    failed: int = 0


def _remove(entry: FileDeletion) -> str:
    """Remove one entry's file; returns the outcome ("removed" or "kept")."""
    if is_used(entry.storage, entry.name):
        return FileDeletion.Outcome.KEPT
    storage = storages[entry.storage]
    storage.delete(entry.name)
    if storage.exists(entry.name):
        raise OSError(f"{entry.name} is still there after deleting it")
    return FileDeletion.Outcome.REMOVED


def deletions_process(
    *, ids: Iterable[int] | None = None, now: datetime.datetime | None = None
) -> ProcessResult:
    """Delete the files of the due, unfinished ledger entries (or of ``ids``); retry-safe.

    Each entry is claimed with ``select_for_update(skip_locked=True)`` so two cron runs never
    work on the same one; deleting a file twice would be harmless anyway. A failure is counted
    on the entry with its error and retried on the next run.
    """
    now = now or timezone.now()
    due = FileDeletion.objects.filter(done_at__isnull=True)
    due = due.filter(pk__in=list(ids)) if ids is not None else due.filter(due_at__lte=now)
    result = ProcessResult()
    for pk in list(due.order_by("due_at", "pk").values_list("pk", flat=True)):
        with transaction.atomic():
            entry = (
                FileDeletion.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, done_at__isnull=True)
                .first()
            )
            if entry is None:
                continue  # another run has it, or finished it
            entry.attempts += 1
            entry.last_attempt_at = timezone.now()
            try:
                entry.outcome = _remove(entry)
            except Exception as error:  # noqa: BLE001 - any storage failure is retried later
                entry.last_error = f"{type(error).__name__}: {error}"[:1000]
                logger.warning(
                    "file deletion failed storage=%s name=%s attempt=%s error=%s",
                    entry.storage,
                    entry.name,
                    entry.attempts,
                    entry.last_error,
                )
                result.failed += 1
            else:
                entry.done_at = entry.last_attempt_at
                entry.last_error = ""
                if entry.outcome == FileDeletion.Outcome.KEPT:
                    result.kept += 1
                else:
                    result.removed += 1
            entry.save()
    return result


def delete_now_or_later(files: Iterable[File]) -> None:
    """Remove files at once (a failed write's leftovers); any the storage refuses go to the ledger."""
    for alias, name in files:
        try:
            storages[alias].delete(name)
        except Exception as error:  # noqa: BLE001
            logger.warning("could not delete storage=%s name=%s error=%s; cron retries", alias, name, error)
            FileDeletion.objects.create(
                storage=alias,
                name=name,
                reason=FileDeletion.Reason.DELETED,
                last_error=f"{type(error).__name__}: {error}"[:1000],
            )


# --- Writing ------------------------------------------------------------------------------
class PendingFiles:
    """Files written for a row that has not committed yet.

    ``save`` reserves each name in the ledger before writing it; ``keep_on_commit`` (called in
    the transaction that saves the row) drops the reservations once the row is committed, and
    ``discard`` removes the files of a row that will never be (whatever could be written of
    them: a full disk leaves a partial file under the name reserved for it).
    """

    def __init__(self) -> None:
        self.reservations: dict[File, int | None] = {}

    @property
    def files(self) -> list[File]:
        return list(self.reservations)

    def save(self, alias: str, name: str, content: bytes) -> str:
        return self.save_all([(alias, name, content)])[0]

    def save_all(self, entries: list[tuple[str, str, bytes]]) -> list[str]:
        """Write the files of one row (``(storage alias, name, content)`` each); the names they
        were saved under. Every name is reserved, in one insert, before the first byte."""
        # Decided before writing, so a half-written file can always be found again.
        names = [storages[alias].get_available_name(name) for alias, name, _ in entries]
        self._reserve([(alias, name) for (alias, _, _), name in zip(entries, names, strict=True)])
        saved_names = []
        for (alias, _, content), name in zip(entries, names, strict=True):
            try:
                saved = storages[alias].save(name, ContentFile(content))
            except Exception as error:
                raise StorageUnavailable() from error
            if saved != name:  # someone took the name meanwhile: reserve the one that was used
                self._reserve([(alias, saved)])
            saved_names.append(saved)
        return saved_names

    def _reserve(self, files: list[tuple[str, str]]) -> None:
        due = timezone.now() + datetime.timedelta(seconds=UPLOAD_RESERVATION_SECONDS)
        entries = FileDeletion.objects.bulk_create(
            FileDeletion(storage=alias, name=name, reason=FileDeletion.Reason.UPLOAD, due_at=due)
            for alias, name in files
        )
        for entry in entries:
            self.reservations[(entry.storage, entry.name)] = entry.pk

    def keep_on_commit(self) -> None:
        ids = [pk for pk in self.reservations.values() if pk is not None]
        # robust: the row is committed either way; a reservation left behind is closed by cron,
        # which sees that the row uses the file.
        transaction.on_commit(
            lambda: FileDeletion.objects.filter(pk__in=ids, done_at__isnull=True).delete(), robust=True
        )

    def discard(self) -> None:
        """Remove what was written now; what cannot be removed is left to cron, due at once."""
        for (alias, name), pk in self.reservations.items():
            try:
                storages[alias].delete(name)
            except Exception as error:  # noqa: BLE001
                logger.warning(
                    "could not remove a failed upload's file storage=%s name=%s: %s", alias, name, error
                )
                try:
                    FileDeletion.objects.filter(pk=pk).update(
                        due_at=timezone.now(), last_error=f"{type(error).__name__}: {error}"[:1000]
                    )
                except DatabaseError:
                    logger.exception("could not update the reservation; cron deletes it when it is due")
                continue
            try:
                FileDeletion.objects.filter(pk=pk).delete()
            except DatabaseError:
                logger.exception("could not drop the reservation; cron finds the file gone")


# --- Reconciling storage and rows --------------------------------------------------------
def walk(storage, path: str = "") -> Iterator[str]:
    """Every file name under ``path`` in ``storage`` (nothing if the folder does not exist)."""
    try:
        directories, files = storage.listdir(path)
    except FileNotFoundError:
        return
    for name in files:
        yield posixpath.join(path, name) if path else name
    for directory in directories:
        yield from walk(storage, posixpath.join(path, directory) if path else directory)


@dataclasses.dataclass
class MissingRowFile:
    storage: str
    name: str
    model: str
    object_id: str
    field: str


@dataclasses.dataclass
class ReconcileReport:
    orphans: list[File] = dataclasses.field(default_factory=list)  # deleted (or would be)
    young_orphans: int = 0  # without a row but inside the grace period
    missing: list[MissingRowFile] = dataclasses.field(default_factory=list)
    deletions: ProcessResult = dataclasses.field(default_factory=ProcessResult)


def _modified(storage, name: str) -> datetime.datetime | None:
    try:
        return storage.get_modified_time(name)
    except (FileNotFoundError, NotImplementedError):
        return None


def reconcile(*, dry_run: bool = False, grace_seconds: int = ORPHAN_GRACE_SECONDS) -> ReconcileReport:
    """Compare every file storage with the rows, both ways (``manage.py reconcile_media``).

    Files no row uses and no ledger entry knows, older than ``grace_seconds``, are recorded in
    the ledger and deleted. Rows whose file is missing are recorded as ``MissingFile`` for staff
    (and an earlier record is closed once the file or the row is gone). ``dry_run`` only reports.
    """
    report = ReconcileReport()
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=grace_seconds)
    still_missing: set[int] = set()
    for alias, fields in sorted(file_fields().items()):
        storage = storages[alias]
        stored = set(walk(storage))  # listed first: an upload writes its files before its row
        used: dict[str, tuple[type[models.Model], str, object]] = {}
        for model, field in fields:
            for pk, name in model._base_manager.exclude(**{field: ""}).values_list("pk", field).iterator():
                used[name] = (model, field, pk)
        known = set(
            FileDeletion.objects.filter(storage=alias, done_at__isnull=True).values_list("name", flat=True)
        )
        for name in sorted(stored - set(used) - known):
            modified = _modified(storage, name)
            if modified is None or modified > cutoff:
                report.young_orphans += 1
                continue
            report.orphans.append((alias, name))
        for name in sorted(set(used) - stored):
            model, field, pk = used[name]
            # Listed before the rows were read: check again that the row and the gap are real.
            if storage.exists(name) or not model._base_manager.filter(pk=pk, **{field: name}).exists():
                continue
            report.missing.append(MissingRowFile(alias, name, model._meta.label_lower, str(pk), field))
    if dry_run:
        return report

    if report.orphans:
        with transaction.atomic():
            entries = FileDeletion.objects.bulk_create(
                FileDeletion(storage=alias, name=name, reason=FileDeletion.Reason.ORPHAN, due_at=now)
                for alias, name in report.orphans
            )
        report.deletions = deletions_process(ids=[entry.pk for entry in entries if entry.pk is not None])
    for item in report.missing:
        record, _ = MissingFile.objects.update_or_create(
            storage=item.storage,
            name=item.name,
            model=item.model,
            object_id=item.object_id,
            field=item.field,
            resolved_at=None,
            defaults={"last_seen_at": now},
        )
        still_missing.add(record.pk)
    MissingFile.objects.filter(resolved_at__isnull=True).exclude(pk__in=still_missing).update(resolved_at=now)
    for item in report.missing:
        logger.error(
            "row without its file model=%s id=%s field=%s storage=%s name=%s",
            item.model,
            item.object_id,
            item.field,
            item.storage,
            item.name,
        )
    return report
