"""The JSON API beside the tus endpoints."""
