"""Benchmarks an edge box runs on itself, registered under `facegate bench`: the face pipeline against
OpenCV's reference (`pipeline`), hnswlib against exact search in the matcher (`match`), and outbox
throughput through a broker against a bare publisher (`outbox`)."""
