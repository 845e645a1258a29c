"""System: info, prune of every area, events, the host probe."""
