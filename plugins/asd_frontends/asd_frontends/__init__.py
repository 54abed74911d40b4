"""asd-frontends: frontends for asdcore."""
__version__ = "0.1.0"
