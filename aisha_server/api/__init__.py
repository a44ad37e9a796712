"""HTTP resources: one module per REST resource, each exporting `routes`."""
