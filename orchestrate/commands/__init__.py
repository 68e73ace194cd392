"""One module per CLI command group, each exposing a Typer app or command functions."""
