"""cargohold.store.drivers package."""
