"""A block of frames as flat numpy arrays: the one in-memory form shared by reader, store and views.

Per-atom arrays are concatenated over frames (``offsets`` marks where each frame starts), which keeps
reading, hashing and storing vectorised. Units: positions and cell in Å, energies in eV, forces in eV/Å,
stress in eV/Å³ with the ASE sign convention (positive = tensile). Missing labels are NaN.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

import numpy as np

from .errors import UsageError

#: Bumped whenever the bytes that go into a frame's content hash change (invalidates stores).
HASH_VERSION = 1


@dataclass
class Frames:
    natoms: np.ndarray  # (F,) int64
    numbers: np.ndarray  # (A,) int64 atomic numbers
    positions: np.ndarray  # (A, 3) float64, Å
    forces: np.ndarray  # (A, 3) float64, eV/Å (NaN if absent)
    energy: np.ndarray  # (F,) float64, eV (NaN if absent)
    free_energy: np.ndarray  # (F,) float64, eV (NaN if absent)
    stress: np.ndarray  # (F, 3, 3) float64, eV/Å³ ASE sign (NaN if absent)
    cell: np.ndarray  # (F, 3, 3) float64, Å, rows are lattice vectors
    pbc: np.ndarray  # (F, 3) bool

    def __post_init__(self) -> None:
        n_frames, n_atoms = len(self.natoms), int(np.sum(self.natoms))
        expected = {
            "numbers": (n_atoms,),
            "positions": (n_atoms, 3),
            "forces": (n_atoms, 3),
            "energy": (n_frames,),
            "free_energy": (n_frames,),
            "stress": (n_frames, 3, 3),
            "cell": (n_frames, 3, 3),
            "pbc": (n_frames, 3),
        }
        for name, shape in expected.items():
            got = getattr(self, name).shape
            if got != shape:
                raise UsageError(f"Frames.{name} has shape {got}, expected {shape}")

    def __len__(self) -> int:
        return len(self.natoms)

    @property
    def offsets(self) -> np.ndarray:
        """(F+1,) start of each frame in the per-atom arrays."""
        out = np.zeros(len(self.natoms) + 1, dtype=np.int64)
        np.cumsum(self.natoms, out=out[1:])
        return out

    @property
    def has_stress(self) -> np.ndarray:
        return ~np.isnan(self.stress).any(axis=(1, 2))

    @classmethod
    def empty(cls) -> Frames:
        return cls.concat([])

    @classmethod
    def concat(cls, blocks: list[Frames]) -> Frames:
        if not blocks:
            z = np.zeros
            return cls(z(0, np.int64), z(0, np.int64), z((0, 3)), z((0, 3)), z(0), z(0), z((0, 3, 3)),
                       z((0, 3, 3)), z((0, 3), bool))
        return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in blocks]) for f in fields(cls)})

    def take(self, indices) -> Frames:
        """The frames at ``indices`` (any order, repeats allowed)."""
        indices = np.asarray(indices, dtype=np.int64)
        atom_idx = atom_indices(self.offsets, indices)
        per_frame = {n: getattr(self, n)[indices] for n in ("natoms", "energy", "free_energy", "stress", "cell", "pbc")}
        per_atom = {n: getattr(self, n)[atom_idx] for n in ("numbers", "positions", "forces")}
        return Frames(**per_frame, **per_atom)

    def content_hashes(self) -> list[bytes]:
        """A 16-byte BLAKE2b digest per frame over structure and labels: identical frames, identical hash.

        NaN (absent) labels hash as their bytes, so a frame with and without stress differ.
        """
        return self._hashes(labels=True)

    def structure_hashes(self) -> list[bytes]:
        """Digest of numbers, positions, cell and pbc only: catches the same structure with other labels."""
        return self._hashes(labels=False)

    def _hashes(self, labels: bool) -> list[bytes]:
        off = self.offsets
        numbers = np.ascontiguousarray(self.numbers, dtype="<i8")
        pos = np.ascontiguousarray(self.positions, dtype="<f8")
        cell = np.ascontiguousarray(self.cell, dtype="<f8")
        pbc = np.ascontiguousarray(self.pbc, dtype=np.uint8)
        if labels:
            forces = np.ascontiguousarray(self.forces, dtype="<f8")
            scalars = np.ascontiguousarray(np.stack([self.energy, self.free_energy], axis=1), dtype="<f8")
            stress = np.ascontiguousarray(self.stress, dtype="<f8")
        out = []
        for i in range(len(self)):
            a, b = off[i], off[i + 1]
            h = hashlib.blake2b(digest_size=16, person=b"tm23frame%d" % HASH_VERSION)
            h.update(numbers[a:b].tobytes())
            h.update(pos[a:b].tobytes())
            h.update(cell[i].tobytes())
            h.update(pbc[i].tobytes())
            if labels:
                h.update(forces[a:b].tobytes())
                h.update(scalars[i].tobytes())
                h.update(stress[i].tobytes())
            out.append(h.digest())
        return out

    # --- ASE interop -------------------------------------------------------------------------------

    def to_atoms(self, i: int):
        """Frame ``i`` as ``ase.Atoms`` with a SinglePointCalculator carrying the labels that are present."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        off = self.offsets
        a, b = off[i], off[i + 1]
        atoms = Atoms(numbers=self.numbers[a:b], positions=self.positions[a:b], cell=self.cell[i], pbc=self.pbc[i])
        results = {}
        if not np.isnan(self.energy[i]):
            results["energy"] = float(self.energy[i])
        if not np.isnan(self.free_energy[i]):
            results["free_energy"] = float(self.free_energy[i])
        if not np.isnan(self.forces[a:b]).any():
            results["forces"] = self.forces[a:b].copy()
        if not np.isnan(self.stress[i]).any():
            results["stress"] = full_3x3_to_voigt(self.stress[i])
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

    @classmethod
    def from_atoms(cls, images) -> Frames:
        """Frames from ``ase.Atoms`` whose calculators hold energy/forces/stress (missing ones become NaN)."""
        images = list(images)
        natoms = np.array([len(a) for a in images], dtype=np.int64)
        n_atoms = int(natoms.sum())
        frames = cls(
            natoms=natoms,
            numbers=np.concatenate([a.numbers for a in images]).astype(np.int64) if images else np.zeros(0, np.int64),
            positions=np.concatenate([a.positions for a in images]) if images else np.zeros((0, 3)),
            forces=np.full((n_atoms, 3), np.nan),
            energy=np.full(len(images), np.nan),
            free_energy=np.full(len(images), np.nan),
            stress=np.full((len(images), 3, 3), np.nan),
            cell=np.array([a.cell.array for a in images]).reshape(-1, 3, 3),
            pbc=np.array([a.pbc for a in images], dtype=bool).reshape(-1, 3),
        )
        off = frames.offsets
        for i, atoms in enumerate(images):
            results = atoms.calc.results if atoms.calc is not None else {}
            if "energy" in results:
                frames.energy[i] = results["energy"]
            if "free_energy" in results:
                frames.free_energy[i] = results["free_energy"]
            if "forces" in results:
                frames.forces[off[i] : off[i + 1]] = results["forces"]
            if "stress" in results:
                frames.stress[i] = voigt_to_full_3x3(np.asarray(results["stress"]))
        return frames


def atom_indices(offsets: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Indices into the per-atom arrays of the atoms of ``frames``, in order (vectorised)."""
    frames = np.asarray(frames, dtype=np.int64)
    counts = offsets[frames + 1] - offsets[frames]
    starts_new = np.zeros(len(frames), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts_new[1:])
    return np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(offsets[frames] - starts_new, counts)


def voigt_to_full_3x3(stress: np.ndarray) -> np.ndarray:
    """(6,) Voigt (xx, yy, zz, yz, xz, xy) or (3, 3) -> (3, 3)."""
    stress = np.asarray(stress, dtype=np.float64)
    if stress.shape == (3, 3):
        return stress.copy()
    if stress.shape != (6,):
        raise UsageError(f"stress must have 6 (Voigt) or 9 values, got shape {stress.shape}")
    xx, yy, zz, yz, xz, xy = stress
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def full_3x3_to_voigt(stress: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6) Voigt (xx, yy, zz, yz, xz, xy), taking the upper triangle as ASE does."""
    s = np.asarray(stress)
    return np.stack([s[..., 0, 0], s[..., 1, 1], s[..., 2, 2], s[..., 1, 2], s[..., 0, 2], s[..., 0, 1]], axis=-1)
