"""One module per CLI verb; each exposes ``configure(parser)`` and ``run(args, ctx) -> int``."""
