"""asd-frontends-ssl: frontends on self-supervised audio encoders (BEATs, EAT, Hugging Face) for asdcore."""
__version__ = "0.1.0"
