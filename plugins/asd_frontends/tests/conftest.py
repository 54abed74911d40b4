import sys
from pathlib import Path

# The tests' helper modules are imported by name, also in the processes that data-parallel tests spawn
# (they inherit this path).
sys.path.insert(0, str(Path(__file__).parent))
