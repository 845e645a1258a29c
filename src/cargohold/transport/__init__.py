"""cargohold.transport package."""
