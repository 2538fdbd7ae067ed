"""Admin for batches: issue 7."""
