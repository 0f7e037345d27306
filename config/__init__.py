"""Typed settings and tenant files."""
