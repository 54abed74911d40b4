"""asd-executors: run the units of asdcore plans in worker processes, as SLURM job arrays or as Ray tasks."""
__version__ = "0.1.0"
