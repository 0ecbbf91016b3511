"""Any interatomic model as an ASE calculator: one place that turns a model spec into a
:class:`ase.calculators.calculator.Calculator` (plus, where the model has one, a batched predictor).

A spec is

- a named model whose weights ship inside its PyPI wheel, so it works offline: ``chgnet`` (CHGNet 0.3.0;
  ``chgnet-0.2.0``, ``chgnet-r2scan``), ``sevennet-0`` (alias ``7net-0``; ``sevennet-0-22may2024``,
  ``sevennet-l3i5``), ``emt`` (ASE's EMT, for tests: Al Cu Ag Au Ni Pd Pt);
- a model whose weights must be given as a local file (they are never downloaded): ``mace:PATH`` (alias
  ``mace-mp:PATH``; any MACE model file), ``mattersim:PATH``, ``orb:PATH`` (``orb-ARCH:PATH`` for another
  orb-models architecture), ``fairchem:PATH``;
- ``nequip:PATH``: a NequIP/Allegro model of nequip 0.19, compiled (``.nequip.pt2``/``.nequip.pth`` from
  ``nequip-compile``) or saved (``.ckpt``, ``.nequip.zip`` package), through nequip's own ASE calculator;
- ``module:factory``: ``factory()`` (called with ``device=`` if it takes it) returns a Calculator;
- a Calculator instance.

A named model whose package or weights are missing raises :class:`~tm23data.errors.UsageError` saying which
package to install or which file to pass. ``resolve(spec, device="cpu")`` is the stable entry point;
:func:`load_model` also returns the model's identity (package version, weights file and sha256) and its
batched predictor.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import UsageError
from ..hashes import file_sha256
from ..provenance import package_versions
from ..torch_dtype import in_float32

#: A batched predictor: list of Atoms -> list of {"energy": eV, "forces": (N, 3) eV/Å, "stress": (3, 3) eV/Å³}.
BatchPredictor = Callable[[list], list]

CHGNET_MODELS = {"chgnet": "0.3.0", "chgnet-0.3.0": "0.3.0", "chgnet-0.2.0": "0.2.0", "chgnet-r2scan": "r2scan"}
SEVENNET_MODELS = {"sevennet-0": "7net-0", "7net-0": "7net-0", "sevennet-0-22may2024": "7net-0_22may2024",
                   "sevennet-l3i5": "7net-l3i5", "7net-l3i5": "7net-l3i5"}  # fmt: skip
def _no_deps_hint(distribution: str, name: str) -> str:
    """The install hint of a package whose own requirements would replace torch, e3nn, lmdb or huggingface-hub
    here (README, "Install, step by step"): --no-deps plus the dependencies it imports."""
    return f"pip install --no-deps {distribution}, then its missing dependencies (the README's {name} install)"


#: Adapters taking a weights file: prefix -> (import name, distribution, pip install hint); ``mace`` and
#: ``mace-mp`` are one adapter (any MACE model file).
PATH_MODELS = {"mace": ("mace", "mace-torch", _no_deps_hint("mace-torch==0.3.16", "MACE")),
               "mace-mp": ("mace", "mace-torch", _no_deps_hint("mace-torch==0.3.16", "MACE")),
               "mattersim": ("mattersim", "mattersim", _no_deps_hint("mattersim==1.2.3", "MatterSim")),
               "orb": ("orb_models", "orb-models", _no_deps_hint("orb-models==0.5.5", "ORB")),
               "fairchem": ("fairchem", "fairchem-core", _no_deps_hint("fairchem-core==2.24.0", "fairchem")),
               "nequip": ("nequip", "nequip", "pip install 'tm23data[nequip]'")}  # fmt: skip


@dataclass
class Model:
    """A resolved model: its calculator, identity and (optionally) a batched predictor."""

    name: str
    calculator: Any
    package: str | None = None
    version: str | None = None
    weights: str | None = None
    weights_sha256: str | None = None
    predict_batch: BatchPredictor | None = field(default=None, repr=False)
    #: Chemical symbols the model was made for, where its file says (MACE); None: not known here.
    elements: tuple[str, ...] | None = None

    def check_element(self, symbol: str) -> None:
        """Refuse an element the model has no parameters for, before any frame is run."""
        if self.elements is not None and symbol not in self.elements:
            raise UsageError(f"{symbol} is not among the elements of the {self.package or self.name} model "
                             f"({', '.join(self.elements)}): {self.name}")  # fmt: skip

    def identity(self) -> dict:
        """What a result records about the model."""
        return {"name": self.name, "package": self.package, "version": self.version, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "calculator": type(self.calculator).__name__,
                "batched": self.predict_batch is not None, "fingerprint": self.fingerprint()}  # fmt: skip

    def fingerprint(self) -> str:
        """What decides whether a finished run is of this model: the weights' sha256, else a digest of the
        calculator's class and parameters (``todict``; state outside the parameters is not seen)."""
        if self.weights_sha256:
            return self.weights_sha256
        import hashlib
        import json

        try:
            params = self.calculator.todict()
        except Exception:  # noqa: BLE001 - any calculator may be passed; its parameters are then unknown
            params = {}
        what = f"{type(self.calculator).__module__}.{type(self.calculator).__qualname__}:{json.dumps(params, sort_keys=True, default=str)}"
        return hashlib.sha256(what.encode()).hexdigest()


def names() -> list[str]:
    """The named models (those needing no file)."""
    return ["emt", *CHGNET_MODELS, *SEVENNET_MODELS]


def resolve(spec, device: str = "cpu"):
    """The ASE Calculator of ``spec`` (see the module docstring) on ``device`` ("cpu", "cuda", "auto")."""
    return load_model(spec, device).calculator


def load_model(spec, device: str = "cpu") -> Model:
    """``spec`` resolved to a :class:`Model` on ``device``."""
    from ase.calculators.calculator import BaseCalculator

    device = resolve_device(device)
    if isinstance(spec, Model):
        return spec
    if isinstance(spec, BaseCalculator):
        return Model(type(spec).__name__, spec, package=type(spec).__module__.split(".")[0],
                     version=_version(type(spec).__module__.split(".")[0]))  # fmt: skip
    if not isinstance(spec, str) or not spec:
        raise UsageError(f"model spec {spec!r}: give a name ({', '.join(names())}), PREFIX:PATH, module:factory "
                         "or an ASE Calculator")  # fmt: skip
    key = spec.lower()
    if key == "emt":
        from ase.calculators.emt import EMT

        return Model("emt", EMT(), package="ase", version=_version("ase"))
    if key in CHGNET_MODELS:
        return _chgnet(spec, CHGNET_MODELS[key], device)
    if key in SEVENNET_MODELS:
        return _sevennet(spec, SEVENNET_MODELS[key], device)
    prefix, sep, rest = spec.partition(":")
    base = "orb" if prefix.lower().startswith("orb-") else prefix.lower()
    if sep and base in PATH_MODELS:
        return _path_model(spec, prefix.lower(), rest, device)
    if sep and rest:
        return _factory(spec, prefix, rest, device)
    if base in PATH_MODELS:
        raise UsageError(f"model {spec!r} needs its weights file: {prefix}:PATH (weights are never downloaded)")
    raise UsageError(f"unknown model {spec!r}; named models: {', '.join(names())}; or mace:PATH, mattersim:PATH, "
                     "orb:PATH, fairchem:PATH, nequip:PATH, module:factory")  # fmt: skip


def resolve_device(device: str) -> str:
    if device not in ("cpu", "cuda", "auto") and not str(device).startswith("cuda:"):
        raise UsageError(f"device {device!r}: choose cpu, cuda, cuda:N or auto")
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
    return device


def _version(package: str) -> str | None:
    return package_versions(package).get(package)


def _require(module: str, spec: str, hint: str):
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] != top and importlib.util.find_spec(top) is not None:
            raise UsageError(f"model {spec!r}: the Python package {top!r} is installed but its dependency "
                             f"{err.name!r} is missing (installed with --no-deps?): pip install it, or {hint}") from err  # fmt: skip
        raise UsageError(f"model {spec!r} needs the Python package {top!r}, which is not "
                         f"installed ({err.name} missing): {hint}") from err  # fmt: skip


def _weights(spec: str, path: str) -> Path:
    p = Path(os.path.expanduser(path))
    if not path or not p.is_file():
        raise UsageError(f"model {spec!r}: weights file {path!r} not found; pass a local file "
                         "(weights are never downloaded)")  # fmt: skip
    return p.resolve()


# --- named models whose weights ship in the wheel --------------------------------------------------------


def _float32_model(model: Model) -> Model:
    """The calculator's ``calculate`` and the batched predictor of ``model`` run in float32 (see
    :mod:`tm23data.torch_dtype`)."""
    model.calculator.calculate = in_float32(model.calculator.calculate)
    if model.predict_batch is not None:
        model.predict_batch = in_float32(model.predict_batch)
    return model


def _chgnet(spec: str, model_name: str, device: str) -> Model:
    _require("chgnet", spec, "pip install 'tm23data[generation]' (chgnet)")
    from chgnet.model import CHGNet, CHGNetCalculator
    from chgnet.model import model as chgnet_model

    weights = _shipped_chgnet_weights(Path(chgnet_model.__file__).parent, model_name)
    model = in_float32(CHGNet.load)(model_name=model_name, use_device=device, verbose=False)
    calc = in_float32(CHGNetCalculator)(model=model, use_device=device)

    def predict_batch(images: list, batch_size: int = 16) -> list:
        from pymatgen.io.ase import AseAtomsAdaptor

        structures = [AseAtomsAdaptor.get_structure(a) for a in images]
        out = model.predict_structure(structures, task="efs", batch_size=batch_size)
        out = [out] if isinstance(out, dict) else out
        # as CHGNetCalculator: energy per atom x atoms (intensive model), stress GPa -> eV/Å³
        factor = calc.stress_weight
        return [{"energy": float(p["e"]) * (len(a) if model.is_intensive else 1), "forces": np.asarray(p["f"]),
                 "stress": _voigt_to_3x3(np.asarray(p["s"]) * factor)} for p, a in zip(out, images)]  # fmt: skip

    return _float32_model(Model(spec, calc, "chgnet", _version("chgnet"), str(weights), file_sha256(weights),
                                predict_batch))  # fmt: skip


def _shipped_chgnet_weights(folder: Path, model_name: str) -> Path:
    found = sorted((folder.parent / "pretrained" / model_name).glob("*.pth.tar"))
    if not found:
        raise UsageError(f"CHGNet {model_name}: no weights in {folder.parent / 'pretrained' / model_name}; "
                         "reinstall chgnet (its wheel ships them)")  # fmt: skip
    return found[0]


def _sevennet(spec: str, name: str, device: str) -> Model:
    _require("sevenn", spec, "pip install 'tm23data[models]' (sevenn)")
    from sevenn import util

    try:
        path = Path(util.pretrained_name_to_path(name)) if _shipped_sevennet(name) else None
    except (ValueError, FileNotFoundError):
        path = None
    if path is None or not path.is_file():
        raise UsageError(f"SevenNet model {name!r} is not shipped in the installed sevenn wheel (shipped: "
                         f"{', '.join(k for k, v in SEVENNET_MODELS.items() if _shipped_sevennet(v))}); weights are "
                         "never downloaded")  # fmt: skip
    import warnings

    from sevenn.calculator import SevenNetCalculator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no tensor-product accelerator"
        calc = in_float32(SevenNetCalculator)(str(path), device=device)

    def predict_batch(images: list, batch_size: int = 16) -> list:
        return _sevennet_batch(calc, images, batch_size)

    return _float32_model(Model(spec, calc, "sevenn", _version("sevenn"), str(path), file_sha256(path), predict_batch))


def _shipped_sevennet(name: str) -> bool:
    from sevenn import _const

    const = {"7net-0": "SEVENNET_0_11Jul2024", "7net-0_22may2024": "SEVENNET_0_22May2024",
             "7net-l3i5": "SEVENNET_l3i5"}[name]  # fmt: skip
    return os.path.isfile(getattr(_const, const, ""))


def _sevennet_batch(calc, images: list, batch_size: int) -> list:
    """SevenNet on a batch of graphs (as ``sevenn inference``), converted as SevenNetCalculator does."""
    import torch
    from sevenn import _keys as KEY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.data import Batch

    model = calc.model
    out: list = []
    model.set_is_batch_data(True)
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            graphs = [AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(a, calc.cutoff, with_shift=False))
                      for a in chunk]  # fmt: skip
            batch = Batch.from_data_list(graphs).to(calc.device)
            result = model(batch)
            counts = [len(a) for a in chunk]
            energies = result[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
            forces = torch.split(result[KEY.PRED_FORCE].detach().cpu(), counts)
            stress = (-result[KEY.PRED_STRESS]).detach().cpu().numpy().reshape(len(chunk), 6)[:, [0, 1, 2, 4, 5, 3]]
            out += [{"energy": float(e), "forces": f.numpy(), "stress": _voigt_to_3x3(s)}
                    for e, f, s in zip(energies, forces, stress)]  # fmt: skip
    finally:
        model.set_is_batch_data(False)
    return out


def _voigt_to_3x3(s) -> np.ndarray:
    from ase.stress import voigt_6_to_full_3x3_stress

    s = np.asarray(s, dtype=np.float64)
    return s if s.shape == (3, 3) else voigt_6_to_full_3x3_stress(s)


# --- models whose weights are a local file --------------------------------------------------------------


def _path_model(spec: str, prefix: str, path: str, device: str) -> Model:
    base = "orb" if prefix.startswith("orb") else prefix
    module, distribution, hint = PATH_MODELS[base]
    if base.startswith("mace"):
        _quiet_mace_import(spec, hint)
    else:
        _require(module, spec, hint)
    weights = _weights(spec, path)
    loader = {"nequip": _nequip_calculator, "mace": _mace_calculator, "mace-mp": _mace_calculator,
              "mattersim": _mattersim_calculator, "orb": _orb_calculator, "fairchem": _fairchem_calculator}[base]  # fmt: skip
    calc = loader(spec, prefix, weights, device)
    return Model(spec, calc, module, _version(distribution), str(weights), file_sha256(weights),
                 elements=_model_elements(calc))  # fmt: skip


def _model_elements(calc) -> tuple[str, ...] | None:
    """The elements of a MACE calculator's model (its ``atomic_numbers``); None for the others."""
    models = getattr(calc, "models", None)
    numbers = getattr(models[0], "atomic_numbers", None) if models else None
    if numbers is None:
        return None
    from ase.data import chemical_symbols

    return tuple(chemical_symbols[int(z)] for z in numbers)


def _nequip_calculator(spec: str, prefix: str, weights: Path, device: str):
    from nequip.integrations.ase import NequIPCalculator

    name = weights.name
    if name.endswith((".pt2", ".pth")):
        return NequIPCalculator.from_compiled_model(str(weights), device=device)
    if name.endswith((".ckpt", ".zip")):
        return NequIPCalculator._from_saved_model(str(weights), device=device)
    raise UsageError(f"model {spec!r}: a nequip model is a compiled .nequip.pt2/.nequip.pth or a saved "
                     ".ckpt/.nequip.zip file")  # fmt: skip


def _quiet_mace_import(spec: str, hint: str):
    """``mace.calculators``, imported without the line it prints on stdout (no cuequivariance), which would
    land in the CLI's output. (Importing mace also sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the
    process, which its own ``MACECalculator(model_paths=...)`` needs; that is left as mace wants it.)"""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return _require("mace.calculators", spec, hint)


def _mace_calculator(spec: str, prefix: str, weights: Path, device: str):
    """A MACE model file (``torch.save`` of the module, as ``mace_run_train`` writes ``*.model`` and as the
    MACE-MP/OMAT releases ship) in float64. The file is a pickle: it is loaded as one (only pass files you
    trust), by path, not by glob, so a name with ``*`` or ``[`` is that file."""
    import torch
    from mace.calculators import MACECalculator

    try:
        module = torch.load(str(weights), map_location=device, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure: say which file and what it should be
        raise UsageError(f"model {spec!r}: {weights} is not a MACE model file (torch.save of a MACE module, "
                         f"e.g. a *.model from mace_run_train): {type(err).__name__}: {err}") from err  # fmt: skip
    if not isinstance(module, torch.nn.Module) or not hasattr(module, "atomic_numbers"):
        raise UsageError(f"model {spec!r}: {weights} holds a {type(module).__name__}, not a MACE model (a torch.save "
                         "of the MACE module, e.g. a *.model from mace_run_train)")  # fmt: skip
    return MACECalculator(models=[module], device=device, default_dtype="float64")


def _mattersim_calculator(spec: str, prefix: str, weights: Path, device: str):
    """A MatterSim checkpoint (``Potential.save``: a dict of model_name, model state, model_args), for
    inference only. The path is absolute, so never one of the release names that mattersim downloads."""
    from mattersim.forcefield.potential import MatterSimCalculator, Potential

    try:
        potential = in_float32(Potential.from_checkpoint)(str(weights), device=device, load_training_state=False)
    except Exception as err:  # noqa: BLE001 - any load failure: say which file and what it should be
        raise UsageError(f"model {spec!r}: {weights} is not a MatterSim checkpoint (Potential.save: model_name, "
                         f"model, model_args): {type(err).__name__}: {err}") from err  # fmt: skip
    calc = MatterSimCalculator(potential=potential, device=device)
    calc.calculate = in_float32(calc.calculate)  # float32 graphs, whatever the process's default dtype
    return calc


def _orb_calculator(spec: str, prefix: str, weights: Path, device: str):
    """An orb-models state dict (``torch.save(model.state_dict())``, as the released ``*.ckpt``) in the
    architecture ``orb-ARCH`` names (default orb_v3_conservative_inf_omat). Loaded in float32 without TF32
    ("float32-highest": benchmark numbers, not throughput), not compiled on CPU (minutes of C++ builds); orb's
    process-wide settings (default dtype, matmul precision) are restored after loading."""
    import pickle
    import warnings

    import torch
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.calculator import ORBCalculator

    arch = prefix.partition("-")[2] or "orb_v3_conservative_inf_omat"
    loader = getattr(pretrained, arch.replace("-", "_"), None)
    if loader is None or arch.endswith("architecture") or not callable(loader):
        raise UsageError(f"model {spec!r}: orb-models has no architecture {arch!r}")
    matmul = torch.get_float32_matmul_precision()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Setting global torch default dtype" (undone here)
            model = in_float32(loader)(weights_path=str(weights), device=device, precision="float32-highest",
                                       compile=None if device != "cpu" else False)  # fmt: skip
    except (RuntimeError, KeyError, pickle.UnpicklingError) as err:
        raise UsageError(f"model {spec!r}: {weights} is not a state dict of orb-models' {arch} (torch.save of "
                         f"model.state_dict(), as the released .ckpt files): {type(err).__name__}: {err}") from err  # fmt: skip
    finally:
        torch.set_float32_matmul_precision(matmul)
    calc = ORBCalculator(model, device=device)
    calc.calculate = in_float32(calc.calculate)
    return calc


def _fairchem_calculator(spec: str, prefix: str, weights: Path, device: str):
    """A fairchem inference checkpoint (``MLIPInferenceCheckpoint``: model and tasks config, weights and EMA
    weights, as the released UMA ``*.pt``) on its ``omat`` task (inorganic materials, PBE: the one that fits
    bulk metals). Full float32 without TF32: "batch" on CPU (not compiled), "high-precision" on a GPU."""
    from fairchem.core import FAIRChemCalculator, pretrained_mlip

    settings = "batch" if device == "cpu" else "high-precision"
    try:
        unit = in_float32(pretrained_mlip.load_predict_unit)(str(weights), inference_settings=settings, device=device)
    except Exception as err:  # noqa: BLE001 - any load failure: say which file and what it should be
        raise UsageError(f"model {spec!r}: {weights} is not a fairchem inference checkpoint (MLIPInferenceCheckpoint, "
                         f"e.g. a released UMA .pt): {type(err).__name__}: {err}") from err  # fmt: skip
    if "omat" not in unit.dataset_to_tasks:
        raise UsageError(f"model {spec!r}: {weights} has no omat task (it has {', '.join(unit.dataset_to_tasks)}); "
                         "TM23 is scored on the inorganic-materials (omat) head")  # fmt: skip
    calc = FAIRChemCalculator(unit, task_name="omat")
    calc.calculate = in_float32(calc.calculate)
    return calc


def _factory(spec: str, module_name: str, attr: str, device: str) -> Model:
    from ase.calculators.calculator import BaseCalculator

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise UsageError(f"model {spec!r}: cannot import module {module_name!r} ({err})") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UsageError(f"model {spec!r}: {module_name} has no callable {attr!r}")
    try:
        takes_device = "device" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_device = False
    calc = factory(device=device) if takes_device else factory()
    if not isinstance(calc, BaseCalculator):
        raise UsageError(f"model {spec!r}: {module_name}.{attr}() returned {type(calc).__name__}, not an ASE Calculator")
    top = module_name.split(".")[0]
    return Model(spec, calc, top, _version(top))
