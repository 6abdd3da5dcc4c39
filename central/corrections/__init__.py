"""Corrections of events ("wrong person", "this is P", "a new person") and the negative examples they teach
the edges (docs/operator-loop.md)."""
