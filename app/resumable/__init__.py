"""The IETF draft "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload), beside tus.

Same upload rows, owners, quotas, stores, locks and completion as tus: only the wire differs.
"""
