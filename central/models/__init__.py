"""Model manifests central knows and their artifacts in object storage, for edges to download."""
