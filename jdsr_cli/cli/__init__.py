"""Command-line interface (Typer + Rich). A thin layer over the library."""
