"""Components the core itself ships, registered through the same hooks as any plugin."""
from . import executors, scorers

DEFAULT_PLUGINS = [executors, scorers]
