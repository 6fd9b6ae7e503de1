"""Running batches: claim with a lease, validate, execute a sliding window, finalize."""
