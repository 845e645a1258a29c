"""cargohold.store package."""
