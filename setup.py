"""Build script: maps the top-level ``plugins/`` folder to the ``dglcleaner_plugins`` package.

Metadata, dependencies and the plugins' entry points live in ``setup.cfg``; this file only
computes the package list, which ``setup.cfg`` cannot express for a renamed folder.
"""
from setuptools import find_packages, setup

core = find_packages(include=["dglcleaner", "dglcleaner.*"])
plugins = ["dglcleaner_plugins"] + [
    "dglcleaner_plugins." + p for p in find_packages(where="plugins")
]

setup(
    packages=core + plugins,
    package_dir={"dglcleaner_plugins": "plugins"},
)
