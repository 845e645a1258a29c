"""cargohold: a daemonless, Docker-compatible container engine and image builder."""

__version__ = "0.1.0"
