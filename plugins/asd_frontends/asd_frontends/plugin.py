"""Hook implementations of asd-frontends (light glue: components import torch lazily)."""
import asdcore


@asdcore.hookimpl
def register_frontends(register):
    from .raw_spec import RawSpecFrontend

    register("raw_spec", RawSpecFrontend)
