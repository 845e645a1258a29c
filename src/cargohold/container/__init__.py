"""cargohold.container package."""
