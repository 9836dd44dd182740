"""The package version (one place; xpnet/__init__ and checkpoints read it)."""
__version__ = "0.1.0"
