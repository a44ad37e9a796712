"""AiSHA server: the aiohttp process that owns the database, the workers and the webhooks."""

__version__ = "0.1.0"
