"""Standard TM23 splits, each resolved to a frozen manifest of frame indices with a content hash.

A split is declared as data (which members form train and test, optionally the first N training
frames); resolving it against a store gives a :class:`SplitManifest` whose ``hash`` covers the content
hashes of its frames in order, so two manifests with the same hash hold the same frames. Train and test
are checked disjoint by content and by structure at every resolution.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field

import numpy as np

from .elements import REGIMES
from .errors import UsageError, did_you_mean
from .store import Store

SUBSETS = ("train", "validation", "test")
LEARNING_CURVE_SIZES = (100, 300, 500, 700, 900)


class SplitError(UsageError):
    """Unknown split name, bad subset string, impossible size, or train/test overlap."""


@dataclass(frozen=True)
class SplitDefinition:
    """Train and test as concatenations of archive members; ``n_train`` keeps the first N training frames;
    ``subsample`` = (N, M) keeps N training and M test frames evenly spaced over them (the grid searches'
    smaller sets: paper, 200 / 100)."""

    name: str
    description: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    n_train: int | None = None
    subsample: tuple[int, int] | None = None

    def resolve(self, store: Store) -> dict[str, np.ndarray]:
        train = np.concatenate([store.members[k] for k in self.train])
        test = np.concatenate([store.members[k] for k in self.test])
        if self.n_train is not None:
            if self.n_train > len(train):
                raise SplitError(
                    f"{self.name}: asks for the first {self.n_train} training frames, but {store.element} has "
                    f"only {len(train)} in {'+'.join(self.train)}"
                )
            train = train[: self.n_train]
        if self.subsample is not None:
            n, m = self.subsample
            if n > len(train) or m > len(test):
                raise SplitError(f"{self.name}: asks for {n} training and {m} test frames, but {store.element}'s "
                                 f"split has {len(train)} and {len(test)}")  # fmt: skip
            train, test = train[evenly_spaced(len(train), n)], test[evenly_spaced(len(test), m)]
        return {"train": train, "test": test}


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """``k`` distinct indices spread evenly over ``range(n)`` (first and last included)."""
    if k >= n:
        return np.arange(n)
    if k == 1:
        return np.array([0])
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def _standard() -> dict[str, SplitDefinition]:
    out = {
        "full": SplitDefinition(
            "full", "2700 training frames (first 900 of each temperature) / 300 test frames (last 100 of each)",
            ("2700cwm_train",), ("2700cwm_test",)),
    }  # fmt: skip
    for regime in REGIMES:
        out[regime] = SplitDefinition(
            regime, f"{regime} trajectory only: first 900 frames / last 100 frames",
            (f"{regime}_nequip_train",), (f"{regime}_nequip_test",))  # fmt: skip
    for target in ("warm", "melt"):
        out[f"cold_to_{target}"] = SplitDefinition(
            f"cold_to_{target}", f"train on all cold frames, test on all {target} frames (paper Figs. 4-5)",
            ("cold_nequip_train", "cold_nequip_test"), (f"{target}_nequip_train", f"{target}_nequip_test"))  # fmt: skip
    for n in LEARNING_CURVE_SIZES:
        out[f"melt_{n}"] = _learning_curve("melt", n)
    return out


def _learning_curve(regime: str, n: int) -> SplitDefinition:
    return SplitDefinition(
        f"{regime}_{n}", f"learning curve: first {n} {regime} training frames / the {regime} test set (paper Fig. 6)",
        (f"{regime}_nequip_train",), (f"{regime}_nequip_test",), n_train=n)  # fmt: skip


STANDARD_SPLITS: dict[str, SplitDefinition] = _standard()
_LEARNING_CURVE_RE = re.compile(rf"^({'|'.join(REGIMES)})_([1-9][0-9]*)$")
_SUBSAMPLE_RE = re.compile(r"^(?P<base>.+)_(?P<n>[1-9][0-9]*)x(?P<m>[1-9][0-9]*)$")


def get_split(name: str) -> SplitDefinition:
    """A standard split, ``{regime}_{N}`` (first N training frames of a regime) for any N, or ``{split}_{N}x{M}``
    (N training and M test frames of a split, evenly spaced: ``full_200x100`` is the paper's grid-search set)."""
    if name in STANDARD_SPLITS:
        return STANDARD_SPLITS[name]
    m = _LEARNING_CURVE_RE.match(str(name))
    if m:
        return _learning_curve(m.group(1), int(m.group(2)))
    m = _SUBSAMPLE_RE.match(str(name))
    base = _known(m.group("base")) if m else None
    if base is not None and base.subsample is None:
        n, k = int(m.group("n")), int(m.group("m"))
        return dataclasses.replace(base, name=str(name), subsample=(n, k), description=(
            f"{n} training / {k} test frames evenly spaced over {base.name}'s (grid searches; paper: 200 / 100)"))  # fmt: skip
    raise SplitError(
        f"unknown split {name!r}.{did_you_mean(name, STANDARD_SPLITS)} Standard splits: {', '.join(STANDARD_SPLITS)}; "
        "also {cold,warm,melt}_N for the first N training frames of a regime, and SPLIT_NxM for N training and M "
        "test frames evenly spaced over a split's (e.g. full_200x100)."
    )


def learning_curve_size(name: str) -> tuple[str, int] | None:
    """``("melt", 300)`` for the learning-curve split ``melt_300`` (first N training frames of a regime), else None."""
    m = _LEARNING_CURVE_RE.match(str(name))
    return (m.group(1), int(m.group(2))) if m else None


def _known(name: str) -> SplitDefinition | None:
    try:
        return get_split(name)
    except SplitError:
        return None


@dataclass(frozen=True)
class SplitManifest:
    """Frozen frame indices (into the element's store) per subset, with a content hash."""

    element: str
    name: str
    archive_md5: str
    validation: float | None
    seed: int | None
    subsets: dict[str, np.ndarray]
    hash: str
    subset_hashes: dict[str, str] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.subsets.items()}

    def to_json(self, store: Store) -> dict:
        """A JSON-able record: frame ids per subset, sizes and hashes."""
        return {
            "element": self.element,
            "split": self.name,
            "archive_md5": self.archive_md5,
            "validation": self.validation,
            "seed": self.seed,
            "hash": self.hash,
            "subsets": {
                k: {"size": len(v), "hash": self.subset_hashes[k], "frame_ids": store.frame_id[v].tolist()}
                for k, v in self.subsets.items()
            },
        }

    def select(self, spec: str) -> np.ndarray:
        """Frame indices for an HF-style split string: ``train``, ``train[:100]``, ``test[10%:]``, ``train+test``
        (the grammar and rounding of HF ``datasets``' ``ReadInstruction``; see :func:`parse_subset`)."""
        sizes = self.sizes()
        parts = []
        for name, start, stop in parse_subset(spec, sizes, split=self.name):
            parts.append(self.subsets[name][start:stop])
        return np.concatenate(parts)


#: One term of a subset string: ``NAME``, ``NAME[FROM:TO]`` with integers or percentages, and an optional
#: ``(closest)`` / ``(pct1_dropremainder)`` rounding, as HF ``datasets`` writes them.
_TERM_RE = re.compile(
    r"^(?P<name>\w+)(\[(?:(?P<from>-?\d+)(?P<from_pct>%)?)?:(?:(?P<to>-?\d+)(?P<to_pct>%)?)?\])?"
    r"(\((?P<rounding>[^)]*)\))?$"
)


def check_subset(spec: str, split: str | SplitDefinition, validation: float | None = None) -> None:
    """Check the split, and the names and grammar of a subset string, before any download or cache build
    (sizes are not known yet; :meth:`SplitManifest.select` resolves the string later)."""
    definition = split if isinstance(split, SplitDefinition) else get_split(split)
    names = ["train", *(["validation"] if validation else []), "test"]
    parse_subset(spec, dict.fromkeys(names, 10**9), split=definition.name)


def parse_subset(spec: str, sizes: dict[str, int], *, split: str = "") -> list[tuple[str, int, int]]:
    """``[(subset, start, stop), ...]`` for an HF-style subset string against subset ``sizes``.

    Same grammar and results as ``datasets.ReadInstruction.from_spec(spec).to_absolute(sizes)`` (terms
    joined by ``+``; slices of absolute counts, negative from the end, or percentages rounded to the
    closest frame, or with ``(pct1_dropremainder)`` in whole percent blocks), without importing ``datasets``.
    """
    where = f" for split {split}" if split else ""
    if not isinstance(spec, str) or not spec.strip():
        raise SplitError(f"empty subset{where}; use one of {', '.join(sizes)} (or e.g. 'train[:100]')")
    out = []
    for term in re.split(r"\s*\+\s*", spec.strip()):
        m = _TERM_RE.match(term)
        if not m:
            raise SplitError(f"bad subset {spec!r}{where}: {term!r} is not NAME or NAME[FROM:TO] (e.g. 'train[:100]', "
                             "'test[10%:]', 'train+test')")  # fmt: skip
        name = m.group("name")
        if name not in sizes:
            raise SplitError(f"bad subset {spec!r}{where}: no subset {name!r}.{did_you_mean(name, sizes)} This split "
                             f"has {', '.join(sizes)}"
                             + ("" if name != "validation" else " (pass validation=F to carve one out of train)"))  # fmt: skip
        rounding = m.group("rounding") or "closest"
        if rounding not in ("closest", "pct1_dropremainder"):
            raise SplitError(f"bad subset {spec!r}{where}: rounding must be closest or pct1_dropremainder")
        n = sizes[name]
        bounds = []
        for key, default in (("from", 0), ("to", n)):
            text = m.group(key)
            if text is None:
                bounds.append(default)
                continue
            value = int(text)
            if m.group("from_pct") or m.group("to_pct"):  # as HF: one % makes both bounds percentages
                if abs(value) > 100:
                    raise SplitError(f"bad subset {spec!r}{where}: percentages must be between -100% and 100%")
                if rounding == "closest":
                    value = int(round(value * n / 100.0))
                elif n < 100:
                    raise SplitError(f"bad subset {spec!r}{where}: pct1_dropremainder on {n} < 100 frames is always empty")
                else:
                    value = value * (n // 100)
            bounds.append(value)
        start, stop = (min(max(n + b, 0) if b < 0 else b, n) for b in bounds)
        out.append((name, start, stop))
    return out


def resolve_split(
    store: Store, split: str | SplitDefinition, *, validation: float | int | None = None, seed: int = 0
) -> SplitManifest:
    """Resolve ``split`` against ``store``; ``validation`` carves a seeded random fraction (a float in (0, 1))
    or count (an integer) of train frames out of train."""
    validation = check_validation(validation)
    definition = split if isinstance(split, SplitDefinition) else get_split(split)
    subsets = definition.resolve(store)
    if validation:
        subsets["train"], subsets["validation"] = carve_validation(subsets["train"], validation, seed)
        subsets = {k: subsets[k] for k in SUBSETS}
    _check_disjoint(store, definition.name, subsets)
    subset_hashes = {k: _hash_frames(store, v) for k, v in subsets.items()}
    digest = hashlib.sha256(json.dumps({"split": definition.name, **subset_hashes}, sort_keys=True).encode())
    return SplitManifest(
        element=store.element,
        name=definition.name,
        archive_md5=store.archive_md5,
        validation=validation or None,
        seed=seed if validation else None,
        subsets=subsets,
        hash=digest.hexdigest(),
        subset_hashes=subset_hashes,
    )


def check_validation(value) -> float | int | None:
    """``validation`` as given: a fraction of train in (0, 1) (the paper's NequIP runs: 0.1), or a number of
    frames (an integer >= 1, as schnetpack's split sizes); 0 and None mean no validation subset."""
    if value is None or (not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and value == 0):
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise SplitError(f"validation must be a fraction or a count of frames, got {value!r}")
    if isinstance(value, (int, np.integer)):
        if value < 1:
            raise SplitError(f"validation must be a fraction between 0 and 1 or a count >= 1, got {value}")
        return int(value)
    if not 0 < value < 1:
        raise SplitError(f"validation must be a fraction between 0 and 1 (paper: 0.1) or a whole number of frames "
                         f"(e.g. 270), got {value}")  # fmt: skip
    return float(value)


def carve_validation(train: np.ndarray, validation: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``train`` into (train, validation) with a seeded random fraction (float) or count (int) of its
    frames for validation; both keep trajectory order."""
    validation = check_validation(validation)
    if validation is None:
        raise SplitError("carve_validation needs a fraction in (0, 1) or a count >= 1")
    n_val = validation if isinstance(validation, int) else max(1, int(round(validation * len(train))))
    if n_val >= len(train):
        raise SplitError(f"validation {validation} leaves no training frames out of {len(train)}")
    chosen = np.zeros(len(train), dtype=bool)
    chosen[np.random.default_rng(seed).permutation(len(train))[:n_val]] = True
    return train[~chosen], train[chosen]


def _hash_frames(store: Store, indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(store.frame_hash[indices]).tobytes()).hexdigest()


def _check_disjoint(store: Store, name: str, subsets: dict[str, np.ndarray]) -> None:
    """No frame (by content or by structure) may sit in two subsets."""
    keys = list(subsets)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            for label, table in (("content", store.frame_hash), ("structure", store.structure_hash)):
                shared = _shared(table, subsets[a], subsets[b])
                if len(shared):
                    ids = ", ".join(store.frame_id[shared[:3]])
                    raise SplitError(
                        f"{store.element} split {name}: {len(shared)} frame(s) of {b} have the same {label} as "
                        f"frames of {a} (e.g. {ids}); the archive repeats frames across train and test"
                    )


def _shared(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices in ``b`` whose 16-byte digest also occurs in ``a`` (prefilter on 8 bytes, confirm on 16)."""
    prefix = np.ascontiguousarray(table[:, :8]).view("<u8").ravel()
    candidates = b[np.isin(prefix[b], prefix[a])]
    if not len(candidates):
        return candidates
    full = {bytes(row) for row in table[a]}
    return np.array([j for j in candidates if bytes(table[j]) in full], dtype=np.int64)
