"""Hook implementations of asd-datasets."""
import asdcore


@asdcore.hookimpl
def register_datasets(register):
    from .dcase_dataset import DcaseDataset
    from .own_dataset import OwnDataset
    from .synth_dataset import SynthDataset

    register("synth", SynthDataset)
    register("dcase", DcaseDataset)
    register("own", OwnDataset)


@asdcore.hookimpl
def register_scorers(register):
    from .scorers import SCORERS

    for name, cls in SCORERS.items():
        register(name, cls)


@asdcore.hookimpl
def register_commands(cli):
    from .commands import data

    cli.add_command(data)
