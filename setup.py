"""Build script. setup.cfg holds the metadata; this file only maps the card templates' one home, the top-level
``hub_cards/`` folder, into the package as ``nag_datasets.hub_cards`` (no symlink and no second copy in the tree)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["nag_datasets", "nag_datasets.*"]), "nag_datasets.hub_cards"],
    package_dir={"nag_datasets.hub_cards": "hub_cards"},
)
