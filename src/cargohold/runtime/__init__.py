"""cargohold.runtime package."""
