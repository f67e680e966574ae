"""The curation admin: where staff review scans, restore or purge babies, freeze training sets and
compare and activate model versions.

One module per admin; ``common`` holds what they share and ``views`` their own pages. Every change
made here goes through ``curation.services``, which writes an audit entry per object (bulk actions
included); Django's own ``LogEntry`` is left to do what it does as well. Importing the modules
registers the admins (Django autodiscovers this package).
"""

from curation.admin import audit_log, babies, files, model_versions, review_queue, training_sets

__all__ = ["audit_log", "babies", "files", "model_versions", "review_queue", "training_sets"]
