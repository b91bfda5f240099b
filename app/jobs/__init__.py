"""Background work that keeps storage and catalogue tidy, safe to run on every instance."""
