"""Koe's project configuration: settings, ASGI routing, URLs and the Celery app."""

from koe.celery import app as celery_app

__all__ = ["celery_app"]
