"""The edge box: cameras, tracker, gallery, matcher, outbox, MQTT client, and its benchmarks."""
