"""Retention: how long each kind of call data is kept, and the purge that enforces it."""
