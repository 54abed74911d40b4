"""Hook implementations of asd-executors (the cluster engines are imported only when a run uses them)."""
import asdcore


@asdcore.hookimpl
def register_executors(register):
    from .processes import ProcessesExecutor
    from .raytasks import RayExecutor
    from .slurm import SlurmExecutor

    register("processes", ProcessesExecutor)
    register("slurm", SlurmExecutor)
    register("ray", RayExecutor)
