"""The loops that own background work; each is started and stopped by a `cleanup_ctx`."""
