"""Galleries: sets of people scoped to sites, their gap-free version log and snapshots."""
