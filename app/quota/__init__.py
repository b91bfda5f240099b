"""Quotas: storage limits per user (download limits come with the download front)."""
