"""Hook implementations of asd-frontends (light glue: components import torch lazily)."""
import asdcore


@asdcore.hookimpl
def register_frontends(register):
    from .ae import AeFrontend
    from .dcase_baseline import DcaseBaselineAeFrontend
    from .multibranch import MultiBranchCnnFrontend
    from .raw_spec import RawSpecFrontend

    register("raw_spec", RawSpecFrontend)
    register("multibranch_cnn", MultiBranchCnnFrontend)
    register("ae", AeFrontend)
    register("dcase_baseline_ae", DcaseBaselineAeFrontend)


@asdcore.hookimpl
def register_losses(register):
    from .losses import LOSSES

    for name, cls in LOSSES.items():
        register(name, cls)


@asdcore.hookimpl
def register_augmentations(register):
    from .augmentations import AUGMENTATIONS

    for name, cls in AUGMENTATIONS.items():
        register(name, cls)
