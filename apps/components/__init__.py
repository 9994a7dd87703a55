"""Reusable layout pieces of the app; each page's component ids live in an ``ids`` class."""
