"""Sync with the guardian dashboard."""
