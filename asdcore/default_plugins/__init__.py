"""Components the core itself ships, registered through the same hooks as any plugin."""
from . import scorers

DEFAULT_PLUGINS = [scorers]
