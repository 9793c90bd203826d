"""Publish and fetch pinned, verified model versions in Azure Blob Storage."""

__version__ = "0.1.0"
