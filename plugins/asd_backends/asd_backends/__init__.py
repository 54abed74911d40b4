"""asd-backends: backends for asdcore."""
__version__ = "0.1.0"
