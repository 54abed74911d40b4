"""asd-datasets: DCASE Task 2 layouts, synthetic machine sounds and official scorers for asdcore."""
__version__ = "0.1.0"
