"""Inference: each camera's latest frame through the face pipeline, the matchers and the tracker into the
outbox (`frames`, the `FrameProcessor` coordinator), the per-camera tracker that links faces into tracks,
votes their identity and emits one event per visit (`tracker`), and the events' face crops (`crops`)."""
