"""tusgate: a resumable-upload gateway (tus) with a download front."""
