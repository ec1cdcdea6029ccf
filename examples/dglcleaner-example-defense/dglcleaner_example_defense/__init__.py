"""An example third-party dglcleaner plugin package (see README.md)."""
from .fine_pruning import FinePruning

__version__ = "0.1.0"
__all__ = ["FinePruning"]
