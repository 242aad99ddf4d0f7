"""Audit: who read, played or exported which call (AccessLog), and call exports."""
