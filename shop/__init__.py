"""The 消费帮扶 shop: `create_app()` (in shop.app) builds the Flask application."""
from .app import create_app

__all__ = ["create_app"]
