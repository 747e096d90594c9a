"""Every package hands on its public names the same way (lazy exports with ``__all__``), and every name resolves."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import nag_datasets

pytestmark = pytest.mark.fast
TEMPLATES = "nag_datasets.hub_cards"


def _packages() -> list[str]:
    packages = pkgutil.walk_packages(nag_datasets.__path__, "nag_datasets.")
    # nag_datasets.hub_cards holds the card templates (data, no code): setup.py maps it into the package, and a
    # checkout may link it in place to use its own templates.
    return [nag_datasets.__name__] + [info.name for info in packages if info.ispkg and info.name != TEMPLATES]


@pytest.mark.parametrize("name", _packages())
def test_package_exports_resolve(name: str) -> None:
    package = importlib.import_module(name)
    exports = package._EXPORTS
    assert sorted(package.__all__) == sorted(exports) and len(set(package.__all__)) == len(package.__all__)
    for attr, module in exports.items():
        assert getattr(package, attr) is getattr(importlib.import_module(f"{name}.{module}"), attr), attr
    assert set(package.__all__) <= set(dir(package))
    # A name equal to a submodule's would be shadowed by that submodule once it is imported.
    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert not submodules & set(exports)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nag_datasets.nope  # noqa: B018
    assert not hasattr(nag_datasets.scoring, "nope")


def test_publishing_and_profiles_are_at_the_top_level() -> None:
    from nag_datasets.hub.export import export_for_hub
    from nag_datasets.hub.profiles import profile_card, push_profile
    from nag_datasets.hub.upload import push_to_hub
    from nag_datasets.scoring.profile_base import Profile

    assert (nag_datasets.export_for_hub, nag_datasets.push_to_hub) == (export_for_hub, push_to_hub)
    assert (nag_datasets.profile_card, nag_datasets.push_profile) == (profile_card, push_profile)
    assert nag_datasets.Profile is Profile and issubclass(nag_datasets.ContrastiveProfile, Profile)
    assert not hasattr(nag_datasets.hub, "load_profile")  # NAGProfile.from_pretrained is the one way
