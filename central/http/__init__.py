"""Central's HTTP layer: error mapping, request context and access log, the `/api/v1` guard, operations
routes (/health, /ready, /metrics, /files)."""
