"""Results store (see slscale.store.base for the interface and its concurrency contract)."""
