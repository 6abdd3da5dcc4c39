"""Unknown faces grouped across cameras and sites: incremental clustering of unknown events' embeddings,
the `/unknown-clusters` API, enrolling or merging a cluster (docs/operator-loop.md)."""
