"""Live events: ingested events pushed to WebSocket clients (`/ws/events`), fanned out through Redis.

See docs/central-monitoring.md ("Live events") for the protocol.
"""
