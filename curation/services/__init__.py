"""Writes for curation, one module per sub-domain; every name callers use is re-exported here.

- the audit log is the ``audit`` app (``audit.services.audit_log``), below every app; it is
  re-exported here for curation's own callers.
- ``reviews``: review state and quality flags of scans, alone or in bulk, and checked labels.
- ``label_quality``: scoring how strongly the active model disagrees with each label.
- staff restoring, purging and relabelling babies are ``babies.services`` (``baby_restore``,
  ``baby_purge``, ``baby_confirm_sex`` with ``source="staff"``), which take the actor and log.
- ``training_sets``: freezing training sets, their data card, and erasing a parent's copies.
- ``export``: writing a frozen set out for ``train_model``.
- switching the active model version is ``predictions.services.model_version_activate``.

Every staff change goes through a function here, and each one writes an :class:`AuditEntry`
inside the same transaction as the change: a change is logged if and only if it happened.
Bulk admin actions call the per-object function in a loop with one shared ``batch`` id, so a
bulk action leaves one entry per object, not a single "changed 40 objects" line.
"""

from audit.models import new_batch
from audit.services import actor_description, audit_log, describe
from curation.services.export import MANIFEST_COLUMNS, ExportResult, training_set_export
from curation.services.label_quality import (
    LabelScoringResult,
    baby_decision,
    label_disagreement,
    label_quality_score,
)
from curation.services.reviews import (
    BulkResult,
    baby_label_mark_checked,
    scan_label_mark_checked,
    scan_review_update,
    scans_review_bulk,
)
from curation.services.training_sets import (
    EXCLUSION_REASONS,
    TRAINING_COPY_PREFIX,
    content_digest,
    training_items_erase_for_owner,
    training_set_create,
    training_set_data_card,
)

__all__ = [
    "EXCLUSION_REASONS",
    "MANIFEST_COLUMNS",
    "TRAINING_COPY_PREFIX",
    "BulkResult",
    "ExportResult",
    "LabelScoringResult",
    "actor_description",
    "audit_log",
    "baby_label_mark_checked",
    "baby_decision",
    "content_digest",
    "describe",
    "label_disagreement",
    "label_quality_score",
    "new_batch",
    "scan_label_mark_checked",
    "scan_review_update",
    "scans_review_bulk",
    "training_items_erase_for_owner",
    "training_set_create",
    "training_set_data_card",
    "training_set_export",
]
