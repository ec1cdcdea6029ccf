"""dglcleaner: backdoor and label-poisoning attacks and defenses for GNNs, on DGL.

Importing the package is cheap: torch and DGL are imported only by the modules that need them
(``dglcleaner.models``, ``dglcleaner.training``, ...), always through ``dglcleaner._dgl``.
"""
__version__ = "0.1.0"
__all__ = ["__version__"]
