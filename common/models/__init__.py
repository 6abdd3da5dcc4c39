"""Model registry: manifests of the known models, fetching and verifying their files."""
