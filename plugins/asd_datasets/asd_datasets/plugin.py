"""Hook implementations of asd-datasets."""
import asdcore


@asdcore.hookimpl
def register_datasets(register):
    from .synth_dataset import SynthDataset

    register("synth", SynthDataset)


@asdcore.hookimpl
def register_scorers(register):
    from .scorers import Dcase2023Scorer

    register("dcase2023", Dcase2023Scorer)


@asdcore.hookimpl
def register_commands(cli):
    from .commands import data

    cli.add_command(data)
