"""Hook implementations of asd-frontends (components by path: torch is imported when a run uses them)."""
import asdcore

ASDCORE_API = 1  # the asdcore plugin contract this plugin is built for (asdcore.API_VERSION)


@asdcore.hookimpl
def register_frontends(register):
    register("raw_spec", "asd_frontends.raw_spec:RawSpecFrontend")
    register("multibranch_cnn", "asd_frontends.multibranch:MultiBranchCnnFrontend")
    register("ae", "asd_frontends.ae:AeFrontend")
    register("dcase_baseline_ae", "asd_frontends.dcase_baseline:DcaseBaselineAeFrontend")


@asdcore.hookimpl
def register_losses(register):
    register("arcface", "asd_frontends.losses:ArcFaceLoss")
    register("adacos", "asd_frontends.losses:AdaCosLoss")
    register("scac", "asd_frontends.losses:SubClusterAdaCosLoss")
    register("adaproj", "asd_frontends.losses:AdaProjLoss")
    register("subspace", "asd_frontends.losses:SubspaceLoss")
    register("featex", "asd_frontends.losses:FeatExLoss")


@asdcore.hookimpl
def register_augmentations(register):
    register("mixup", "asd_frontends.augmentations:Mixup")
    register("specaugment", "asd_frontends.augmentations:SpecAugment")
