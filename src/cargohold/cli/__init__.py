"""Command-line interface: argparse commands that parse, call the engine and render."""
