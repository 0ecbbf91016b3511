"""Model specs -> ASE calculators: named models from their wheels, factories, instances, clear errors."""

import numpy as np
import pytest
from ase.build import bulk
from support import needs

from tm23data.baselines.models import load_model, names, resolve
from tm23data.errors import UsageError


def _cu(seed=1):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_emt_factory_and_instance_resolve_to_calculators():
    from ase.calculators.emt import EMT

    assert type(resolve("emt")).__name__ == "EMT"
    assert type(resolve("ase.calculators.emt:EMT")).__name__ == "EMT"
    calc = EMT()
    assert resolve(calc) is calc
    model = load_model("ase.calculators.emt:EMT")
    assert model.identity()["package"] == "ase" and model.identity()["version"]


@pytest.mark.parametrize(
    "spec, words",
    [
        ("no-such-model", ["unknown model", "chgnet", "sevennet-0", "module:factory"]),
        ("mace-mp", ["weights file", "never downloaded"]),
        ("nequip:/no/such/model.nequip.pt2", ["not found", "never downloaded"]),
        ("ase.calculators.emt:no_such_factory", ["no callable"]),
        ("no_such_module_xyz:make", ["cannot import module"]),
        ("os:getcwd", ["not an ASE Calculator"]),
    ],
)
def test_bad_specs_say_what_to_do(spec, words):
    with pytest.raises(UsageError) as err:
        load_model(spec)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("spec, package", [("mace:x.model", "mace"), ("mace-mp:x.model", "mace"), ("mattersim:x.pth", "mattersim"),
                                           ("orb:x.ckpt", "orb_models"), ("fairchem:x.pt", "fairchem")])  # fmt: skip
def test_missing_packages_are_named(spec, package, tmp_path):
    from support import missing

    if not missing(package):
        pytest.skip(f"{package} is installed")
    with pytest.raises(UsageError, match=f"needs the Python package '{package}'"):
        load_model(spec)


def test_device_is_checked():
    with pytest.raises(UsageError, match="choose cpu"):
        load_model("emt", device="tpu")


def test_names_list_the_shipped_models():
    assert {"emt", "chgnet", "sevennet-0", "7net-0"} <= set(names())


def _batched_equals_calculator(model):
    images = [_cu(1), _cu(2)]
    batch = model.predict_batch(images)
    for atoms, pred in zip(images, batch):
        atoms.calc = model.calculator
        # float32 models: a batch sums in another order than one frame (1e-5 eV of 130 eV seen for SevenNet)
        assert pred["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-4)
        np.testing.assert_allclose(pred["forces"], atoms.get_forces(), atol=1e-4)
        np.testing.assert_allclose(pred["stress"], atoms.get_stress(voigt=False), atol=1e-7)
    # a sensible model of copper: about -4 eV/atom, forces below a few eV/Å on a small rattle
    assert -6 < batch[0]["energy"] / len(images[0]) < -2
    assert np.abs(batch[0]["forces"]).max() < 3


@needs("chgnet")
def test_chgnet_from_its_wheel_batched_as_calculator(chgnet_model):
    ident = chgnet_model.identity()
    assert ident["package"] == "chgnet" and len(ident["weights_sha256"]) == 64 and ident["batched"]
    _batched_equals_calculator(chgnet_model)


@needs("sevenn")
def test_sevennet0_from_its_wheel_batched_as_calculator(sevennet_model):
    ident = sevennet_model.identity()
    assert ident["package"] == "sevenn" and "SevenNet_0__11Jul2024" in ident["weights"]
    _batched_equals_calculator(sevennet_model)


@needs("chgnet", "torch")
def test_chgnet_works_after_something_set_torch_to_float64():
    """Loading a NequIP model sets torch's default dtype to float64 for the process (nequip's global
    state); CHGNet must still run in the same process (a leaderboard evaluates both)."""
    import torch
    from ase.build import bulk

    from tm23data.baselines.models import load_model

    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = load_model("chgnet")
        atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
        atoms.calc = model.calculator
        assert abs(atoms.get_potential_energy() / len(atoms) + 4.1) < 1.0
        assert torch.get_default_dtype() == torch.float64  # left as it was
        (batched,) = model.predict_batch([atoms])
        assert abs(batched["energy"] - atoms.get_potential_energy()) < 1e-3
    finally:
        torch.set_default_dtype(saved)


def test_a_missing_dependency_of_an_installed_package_is_named(monkeypatch):
    """An adapter package installed with --no-deps whose own dependency is missing: the error names the
    dependency, not the package (which is there)."""
    from tm23data.baselines import models

    def fail(name):
        raise ModuleNotFoundError("No module named 'torch_ema'", name="torch_ema")

    monkeypatch.setattr(models.importlib, "import_module", fail)
    with pytest.raises(UsageError, match="'ase' is installed but its dependency 'torch_ema' is missing"):
        models._require("ase.calculators.emt", "x:y", "pip install x")
