"""The desktop's local replica (Qt-free): replicated rows with indexed view columns, the
durable outbox of local edits, the pull cursor, and the conflicts and rejections to show."""

from aisha_desktop.replica.schema import RECORD_ENTITIES, SCHEMA_VERSION, SETTINGS_ENTITIES
from aisha_desktop.replica.store import (
    OutboxEntry,
    QueryPage,
    RecordMissing,
    Rejection,
    Replica,
    ReplicaError,
    ReplicaRow,
    StoredConflict,
    replica_path,
)

__all__ = [
    "RECORD_ENTITIES",
    "SCHEMA_VERSION",
    "SETTINGS_ENTITIES",
    "OutboxEntry",
    "QueryPage",
    "RecordMissing",
    "Rejection",
    "Replica",
    "ReplicaError",
    "ReplicaRow",
    "StoredConflict",
    "replica_path",
]
