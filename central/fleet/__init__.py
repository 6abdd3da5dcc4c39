"""Fleet: sites and their edges (registration, credentials, status)."""
