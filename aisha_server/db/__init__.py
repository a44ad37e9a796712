"""Storage: portable types, models, the unit of work and repositories."""
