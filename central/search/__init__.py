"""Search by photo: the people and the events whose faces match a photo (docs/operator-loop.md)."""
