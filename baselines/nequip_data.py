"""NequIP (0.19, Lightning) data straight from the tm23data store: no extxyz round trip.

``TM23StoreDataModule`` is a :class:`nequip.data.datamodule.NequIPDataModule` whose train, validation
and test datasets are the subsets of a resolved TM23 split (:func:`tm23data.splits.resolve_split`, the
same seeded validation carve as everywhere else in tm23data). In a nequip config::

    data:
      _target_: tm23data.baselines.nequip_data.TM23StoreDataModule
      element: Cu
      split: full
      validation: 0.1
      split_seed: 0
      archive_md5: <md5 of the archive the store was built from>
      seed: 0
      transforms: [...]          # ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
      train_dataloader: {...}

Frames become ``AtomicDataDict`` s once, at dataset construction, from the store's flat arrays (eV, Å,
eV/Å, eV/Å³ with the ASE stress sign, which is nequip's convention too); nequip's transforms run per
access exactly as with its own ``ASEDataModule``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from nequip.data import AtomicDataDict
from nequip.data.datamodule import NequIPDataModule
from nequip.data.dataset import AtomicDataset
from nequip.data.dict import from_dict

from ..errors import UsageError
from ..frames import Frames

#: tm23data subset name -> nequip dataset role.
ROLES = {"train": "train", "validation": "val", "test": "test"}


def frames_to_data_list(frames: Frames, *, with_labels: bool = True) -> list[dict]:
    """``AtomicDataDict`` s (unbatched) for every frame: positions, cell, pbc, atomic numbers and, with
    ``with_labels``, ``total_energy`` (eV), ``forces`` (eV/Å) and ``stress`` (eV/Å³, ASE sign) where present."""
    off = frames.offsets
    has_stress = frames.has_stress
    out = []
    for i in range(len(frames)):
        a, b = off[i], off[i + 1]
        data = {
            AtomicDataDict.POSITIONS_KEY: frames.positions[a:b],
            AtomicDataDict.CELL_KEY: frames.cell[i],
            AtomicDataDict.PBC_KEY: frames.pbc[i],
            AtomicDataDict.ATOMIC_NUMBERS_KEY: frames.numbers[a:b],
        }
        if with_labels:
            data[AtomicDataDict.TOTAL_ENERGY_KEY] = np.array([frames.energy[i]])
            data[AtomicDataDict.FORCE_KEY] = frames.forces[a:b]
            if has_stress[i]:
                data[AtomicDataDict.STRESS_KEY] = frames.stress[i][None]
        out.append(from_dict(data))
    return out


def split_frames(element: str, split: str, subset: str, *, validation: float | None, split_seed: int,
                 archive_md5: str | None = None) -> Frames:  # fmt: skip
    """The frames of one subset of a resolved split, from the store of the given archive."""
    from .. import config
    from ..selection import Selection

    source = config.archive_source(md5=archive_md5) if archive_md5 else None
    selection = Selection.open(element, split, validation=validation, seed=split_seed, source=source, progress=False)
    if subset not in selection.subsets:
        raise UsageError(
            f"{element}/{split} has no {subset!r} subset (has {', '.join(selection.subsets)}); "
            "validation needs a validation fraction"
        )
    return selection.frames(subset)


class TM23StoreDataset(AtomicDataset):
    """One subset (``train``, ``validation`` or ``test``) of a TM23 split as a nequip dataset."""

    def __init__(
        self,
        element: str,
        split: str,
        subset: str,
        validation: float | None = None,
        split_seed: int = 0,
        archive_md5: str | None = None,
        transforms: list[Callable] = [],  # noqa: B006 - nequip's own signature style; never mutated
    ):
        super().__init__(transforms=transforms)
        frames = split_frames(element, split, subset, validation=validation, split_seed=split_seed,
                              archive_md5=archive_md5)  # fmt: skip
        self.element, self.split, self.subset = element, split, subset
        self.data_list = frames_to_data_list(frames)

    def __len__(self) -> int:
        return len(self.data_list)

    def _get_data_list(self, indices):
        if isinstance(indices, slice):
            return self.data_list[indices]
        return [self.data_list[int(i)] for i in indices]


class TM23StoreDataModule(NequIPDataModule):
    """Train/validation/test datasets of a TM23 split, read from the tm23data store.

    Args:
        seed: nequip's data seed (shuffling of the training loader).
        element, split: which TM23 element and split (``tm23 splits`` lists them).
        validation: fraction of the training frames carved (seeded) into the validation set; the
            paper used 0.1. Required for training runs.
        split_seed: seed of that carve (tm23data's, so other tools get the same frames).
        archive_md5: the archive whose store to read (default: ``TM23_MD5`` or the published one).
        transforms: nequip data transforms, applied per access.
        **kwargs: ``train_dataloader``, ``val_dataloader``, ``test_dataloader``, ``stats_manager``, ...
            as for :class:`~nequip.data.datamodule.NequIPDataModule`.
    """

    def __init__(
        self,
        seed: int,
        element: str,
        split: str,
        validation: float | None = None,
        split_seed: int = 0,
        archive_md5: str | None = None,
        transforms: list = [],  # noqa: B006
        **kwargs,
    ):
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(transforms, (DictConfig, ListConfig)):
            transforms = OmegaConf.to_container(transforms, resolve=True)
        common = {
            "_target_": f"{TM23StoreDataset.__module__}.{TM23StoreDataset.__qualname__}",
            "element": element,
            "split": split,
            "validation": validation,
            "split_seed": split_seed,
            "archive_md5": archive_md5,
            "transforms": transforms,
        }
        datasets = {f"{role}_dataset": [] for role in ROLES.values()}
        for subset, role in ROLES.items():
            if subset == "validation" and not validation:
                continue
            datasets[f"{role}_dataset"] = [{**common, "subset": subset}]
        super().__init__(seed=seed, **datasets, **kwargs)
        self.element, self.split = element, split
