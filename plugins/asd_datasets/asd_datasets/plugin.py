"""Hook implementations of asd-datasets (components by path: imported when a run uses them)."""
import asdcore

ASDCORE_API = 1  # the asdcore plugin contract this plugin is built for (asdcore.API_VERSION)


@asdcore.hookimpl
def register_datasets(register):
    register("synth", "asd_datasets.synth_dataset:SynthDataset")
    register("dcase", "asd_datasets.dcase_dataset:DcaseDataset")
    register("own", "asd_datasets.own_dataset:OwnDataset")


@asdcore.hookimpl
def register_scorers(register):
    from .years import YEARS  # plain data

    for year in YEARS:
        register(f"dcase{year}", f"asd_datasets.scorers:Dcase{year}Scorer")


@asdcore.hookimpl
def register_commands(cli):
    from .commands import data

    cli.add_command(data)
