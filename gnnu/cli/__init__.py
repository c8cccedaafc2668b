"""Command-line entry points: thin argument parsing that calls the library (no logic here)."""
