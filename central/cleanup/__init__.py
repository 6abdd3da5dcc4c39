"""Deleting face-data objects whose rows are gone, through the `pending_deletions` queue."""
