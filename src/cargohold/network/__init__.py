"""cargohold.network package."""
