"""cargohold.build package."""
