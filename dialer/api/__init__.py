"""The HTTP API and the dashboard: ``dialer api serve``."""

from .app import create_app

__all__ = ["create_app"]
