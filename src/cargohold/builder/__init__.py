"""cargohold.builder package."""
