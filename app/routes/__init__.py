"""Blueprints grouped by protocol."""
