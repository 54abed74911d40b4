"""Hook implementations of asd-frontends-ssl (light glue: torch, peft and transformers load lazily)."""
import asdcore


@asdcore.hookimpl
def register_frontends(register):
    from .frontends import BeatsFrontend, EatFrontend, HfEncoderFrontend, RawBeatsFrontend, RawEatFrontend

    register("beats", BeatsFrontend)
    register("eat", EatFrontend)
    register("raw_beats", RawBeatsFrontend)
    register("raw_eat", RawEatFrontend)
    register("hf_encoder", HfEncoderFrontend)
