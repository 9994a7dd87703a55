"""Dash Pages of the app (loaded by Dash when :func:`apps.server.create_app` runs)."""
