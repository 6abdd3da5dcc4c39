"""Central's HTTP layer: error mapping, request context, authentication guard, metrics, operations routes."""
