"""The sync engine (Qt-free): pushes the replica's outbox, pulls the server's change feed,
listens to its stream, and reports its state to plain callbacks."""

from aisha_desktop.sync.engine import SyncEngine, SyncState, backoff_delay

__all__ = ["SyncEngine", "SyncState", "backoff_delay"]
