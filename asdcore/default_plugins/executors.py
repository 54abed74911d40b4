"""The core's executor ``local``: the units one after another in this process."""
from ..local_executor import LocalExecutor
from ..hookspecs import hookimpl


@hookimpl
def register_executors(register):
    register("local", LocalExecutor)
