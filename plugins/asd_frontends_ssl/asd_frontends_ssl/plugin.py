"""Hook implementations of asd-frontends-ssl (components by path: torch, peft and transformers are imported
when a run uses them)."""
import asdcore

ASDCORE_API = 1  # the asdcore plugin contract this plugin is built for (asdcore.API_VERSION)


@asdcore.hookimpl
def register_frontends(register):
    register("beats", "asd_frontends_ssl.frontends:BeatsFrontend")
    register("eat", "asd_frontends_ssl.frontends:EatFrontend")
    register("raw_beats", "asd_frontends_ssl.frontends:RawBeatsFrontend")
    register("raw_eat", "asd_frontends_ssl.frontends:RawEatFrontend")
    register("hf_encoder", "asd_frontends_ssl.frontends:HfEncoderFrontend")
