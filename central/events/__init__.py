"""Recognition events: the repository ingest writes through, filtered listing, crops, last seen."""
