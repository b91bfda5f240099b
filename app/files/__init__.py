"""The file catalogue: files by SHA-256, their copies and owners."""
