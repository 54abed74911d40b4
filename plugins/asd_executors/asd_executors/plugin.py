"""Hook implementations of asd-executors (by path: the cluster engines are imported only when a run uses them)."""
import asdcore

ASDCORE_API = 1  # the asdcore plugin contract this plugin is built for (asdcore.API_VERSION)


@asdcore.hookimpl
def register_executors(register):
    register("processes", "asd_executors.processes:ProcessesExecutor")
    register("slurm", "asd_executors.slurm:SlurmExecutor")
    register("ray", "asd_executors.raytasks:RayExecutor")
