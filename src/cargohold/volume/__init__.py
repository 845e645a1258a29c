"""cargohold.volume package."""
