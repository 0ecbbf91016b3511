"""``tm23 export``: a TM23 split written as files other codes read as is.

- ``extxyz``: ``OUT/{El}_{split}_{subset}.xyz`` per subset, written by ASE (``energy``, ``free_energy`` and
  ``stress`` in the comment line, ``forces`` as a column; ``frame_id``/``regime``/``element`` as extra
  info keys). ``ase.io.read`` puts the labels into a SinglePointCalculator; nequip/Allegro read it with
  their ASE dataset, MACE with ``--energy_key=energy --forces_key=forces --stress_key=stress`` (it then
  takes them from the calculator).
- ``parquet``: ``OUT/{El}_{split}_{subset}.parquet`` per subset, the ``load_tm23`` columns with their
  Hugging Face features in the schema metadata.
- ``hf``: a Hugging Face Hub dataset folder: ``data/{config}/{subset}-00000-of-00001.parquet`` and a
  ``README.md`` whose YAML ``configs:`` block lets ``datasets.load_dataset(OUT, CONFIG, split=...)`` load
  it (offline, from the folder) and the Hub show it. One config per element and split (``Cu_full``);
  exporting more elements or splits into the same folder adds configs. Upload with
  ``hf upload USER/NAME OUT . --repo-type dataset`` (see docs/views.md).
- ``asedb``: ``OUT/{El}_{split}.db``, an ASE SQLite database; each row has the key-value pairs
  ``subset``, ``split``, ``frame_id``, ``regime``, ``tm23_element``: ``db.select(subset="test")``.

Every file is written to a temporary name and renamed into place; existing files are only replaced
with ``overwrite=True`` (``--overwrite``). Units everywhere: Å, eV, eV/Å, eV/Å³ (ASE sign: positive =
tensile).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .atomic import atomic_path, write_atomic
from .errors import UsageError

SHARD = "00000-of-00001"
#: Heading of the dataset card body; a README.md without it is not overwritten unless asked to.
CARD_MARKER = "# TM23 (exported by tm23data)"


def export(
    element: str | list[str],
    split: str = "full",
    format: str = "extxyz",
    out: str | os.PathLike = ".",
    *,
    validation: float | None = None,
    seed: int = 0,
    config_name: str | None = None,
    overwrite: bool = False,
    source=None,
    progress: bool = True,
    archive=None,
) -> list[Path]:
    """Export ``split`` of each element in ``element`` as ``format`` into the folder ``out``; returns the
    files written (for ``hf`` the README.md last). One set of files (one config) per element."""
    from . import elements
    from .selection import Selection

    writer = _writer(format)
    symbols = elements.resolve(element)
    if config_name is not None and len(symbols) > 1:
        raise UsageError("config_name names one config; export one element at a time to choose names")
    out = _folder(out)
    written: list[Path] = []
    for symbol in symbols:
        selection = Selection.open(symbol, split, validation=validation, seed=seed, source=source, progress=progress,
                                   archive=archive)  # fmt: skip
        written += writer(selection, out, overwrite=overwrite, progress=progress,
                          **({"config_name": config_name} if format == "hf" else {}))  # fmt: skip
    return written


def export_selection(selection, format: str, out: str | os.PathLike, *, overwrite: bool = False,
                     progress: bool = True, config_name: str | None = None) -> list[Path]:  # fmt: skip
    """Write a :class:`tm23data.selection.Selection` of one element as ``format`` into the folder ``out``."""
    writer = _writer(format)
    selection.store  # one element per set of files (raises for several)
    kwargs = {"config_name": config_name} if format == "hf" else {}
    return writer(selection, _folder(out), overwrite=overwrite, progress=progress, **kwargs)


def _writer(format: str):
    if format not in WRITERS:
        raise UsageError(f"unknown export format {format!r}; choose one of {', '.join(WRITERS)}")
    return WRITERS[format]


def _folder(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder; exports are written into a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def default_config_name(element: str, split: str, validation: float | None = None, seed: int = 0) -> str:
    """``Cu_full``; with a validation carve ``Cu_full_val0p1_seed0`` (its train differs)."""
    name = f"{element}_{split}"
    if validation:
        name += f"_val{validation:g}_seed{seed}".replace(".", "p")
    return name


# --------------------------------------------------------------------------------------------------
# Formats: each writer takes a Selection of one element and the output folder.


def _stem(selection) -> str:
    """``Cu_full``: the start of every file name of the export of one element and split."""
    return f"{selection.store.element}_{selection.split}"


def export_extxyz(selection, out, *, overwrite=False, progress=True):
    import ase.io

    targets = {name: Path(out) / f"{_stem(selection)}_{name}.xyz" for name in selection.subsets}
    _refuse_existing(targets.values(), overwrite)
    origin = selection.origin.summary()
    for name, target in targets.items():
        frames = selection.to_atoms(name)
        for atoms in frames:  # every comment line says where the frame came from
            atoms.info["data_origin"] = origin
        with atomic_path(target) as tmp:
            ase.io.write(tmp, frames, format="extxyz")
    return list(targets.values())


def export_parquet(selection, out, *, overwrite=False, progress=True):
    targets = {name: Path(out) / f"{_stem(selection)}_{name}.parquet" for name in selection.subsets}
    _refuse_existing(targets.values(), overwrite)
    subsets = selection.to_hf()
    for name, target in targets.items():
        with atomic_path(target) as tmp:
            _to_parquet(subsets[name], tmp, selection)
    return list(targets.values())


def export_asedb(selection, out, *, overwrite=False, progress=True):
    import ase.db

    element, split = selection.store.element, selection.split
    target = Path(out) / f"{_stem(selection)}.db"
    _refuse_existing([target], overwrite)
    with atomic_path(target) as tmp:
        db = ase.db.connect(str(tmp), type="db", append=False)
        with db:  # one transaction: thousands of rows in seconds
            for name in selection.subsets:
                for atoms in selection.to_atoms(name):
                    info = atoms.info
                    db.write(atoms, subset=name, split=split, frame_id=info["frame_id"], regime=info["regime"],
                             tm23_element=info["element"])  # fmt: skip
        origin = selection.origin
        db.metadata = {
            "title": f"TM23 {element}, split {split}" + ("" if origin.published else f" - {origin.short()}"),
            "data_origin": origin.to_json(),
            "units": "Å, eV, eV/Å, eV/Å³ (ASE sign)",
            "license": "CC-BY-4.0",
            "doi": "10.1038/s41524-024-01264-z",
        }
    return [target]


def export_hf(selection, out, *, config_name=None, overwrite=False, progress=True):
    """Parquet per subset under ``data/{config}/`` and the README.md card with the YAML that loads it."""
    from filelock import FileLock

    config = config_name or default_config_name(selection.store.element, selection.split, selection.validation,
                                                selection.seed)
    if not re.match(r"^[A-Za-z0-9][\w.-]*$", config):
        raise UsageError(f"config name {config!r} must be letters, digits, '_', '-' or '.'")
    out = Path(out)
    subsets = selection.to_hf()
    folder = out / "data" / config
    targets = {name: folder / f"{name}-{SHARD}.parquet" for name in subsets}
    # Exports of several configs into one folder may run at once: serialise the README update. The lock
    # file sits next to the folder (hidden), so nothing but the dataset lands in the folder to upload.
    lock = out.resolve().parent / f".{out.resolve().name}.tm23-export.lock"
    readme = out / "README.md"
    with FileLock(str(lock)):
        _refuse_existing([*targets.values(), folder / "split_manifest.json"], overwrite)
        if readme.exists() and CARD_MARKER not in readme.read_text(errors="replace") and not overwrite:
            raise FileExistsError(
                f"{readme} exists and was not written by tm23 export; its text would be replaced by the TM23 "
                "dataset card. Export into another folder, or pass --overwrite (its YAML configs are kept)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"*-{SHARD}.parquet"):  # an overwritten config may have had other subsets
            if stale not in targets.values():
                stale.unlink()
        for name, ds in subsets.items():
            with atomic_path(targets[name]) as tmp:
                _to_parquet(ds, tmp, selection)
        record = selection.to_json()[0]
        record.update(config=config, sizes=selection.sizes(), units="Å, eV, eV/Å, eV/Å³ (ASE sign)",
                      data_origin=selection.origin.to_json())
        write_atomic(folder / "split_manifest.json", json.dumps(record, indent=1))
        write_atomic(readme, _dataset_card(out, readme, config, subsets))
    return [*targets.values(), folder / "split_manifest.json", readme]


#: Format name -> writer(selection, out, *, overwrite, progress[, config_name]).
WRITERS = {"extxyz": export_extxyz, "parquet": export_parquet, "hf": export_hf, "asedb": export_asedb}
FORMATS = tuple(WRITERS)


# --------------------------------------------------------------------------------------------------
# Dataset card


def _dataset_card(out: Path, readme: Path, config: str, subsets: dict) -> str:
    """README.md text: the existing card's configs and dataset_info merged with this config's, and a
    regenerated body that lists every config of the folder."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    from . import manifest
    from .hf import features

    if readme.exists():
        data = DatasetCard.load(readme).data
    else:
        data = DatasetCardData(
            license="cc-by-4.0",
            pretty_name="TM23: transition-metal DFT frames for machine-learned force fields",
            tags=["chemistry", "materials-science", "interatomic-potentials", "dft", "molecular-dynamics"],
        )
    MetadataConfigs(
        {config: {"data_files": [{"split": name, "path": f"data/{config}/{name}-*.parquet"} for name in subsets]}}
    ).to_dataset_card_data(data)
    splits = SplitDict()
    for name, ds in subsets.items():
        splits.add(SplitInfo(name=name, num_bytes=int(ds.data.nbytes), num_examples=len(ds)))
    DatasetInfosDict({config: DatasetInfo(features=features(), splits=splits)}).to_dataset_card_data(data)
    infos = data["dataset_info"] if isinstance(data["dataset_info"], list) else [data["dataset_info"]]
    rows = sum(int(s.get("num_examples", 0)) for info in infos for s in info.get("splits", []))
    data["size_categories"] = [_size_category(rows)]
    configs = [c["config_name"] for c in data["configs"]]
    return f"---\n{data.to_yaml()}\n---\n{_card_body(out, configs, manifest)}"


def _card_body(out: Path, configs: list[str], manifest) -> str:
    from .hf import CITATION, COLUMNS

    rows, not_published = [], []
    for name in configs:
        record_path = out / "data" / name / "split_manifest.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        sizes = ", ".join(f"{k} {v}" for k, v in record.get("sizes", {}).items()) or "-"
        origin = record.get("data_origin") or {"published": False, "summary": "unknown (no record)"}
        if not origin.get("published"):
            not_published.append(f"- `{name}`: {origin.get('summary')}")
        rows.append(f"| `{name}` | {record.get('element', '-')} | {record.get('split', '-')} | {sizes} | "
                    f"{'published TM23 (VASP/PBE)' if origin.get('published') else '**NOT published TM23 data**'} |")
    columns = "\n".join(f"| `{k}` | {v} |" for k, v in COLUMNS.items())
    example = configs[0] if configs else "Cu_full"
    if not_published:
        about = f"""> **WARNING: NOT THE PUBLISHED TM23 DATA.** {len(not_published)} of the {len(configs)} configs below were
> not made from the published TM23 archive (VASP 5.4.1, PBE). Their labels are not the paper's DFT labels;
> do not report numbers on them as TM23 results, and do not upload this folder as TM23.
>
""" + "\n".join(f"> {line}" for line in not_published) + """

Frames in the format of the TM23 benchmark (Owen, Torrisi et al., *npj Comput. Mater.* **10**, 92 (2024)):
periodic cells of d-block metals at 0.25, 0.75 and 1.25 x the melting temperature ("cold", "warm", "melt")
with energies, forces and stresses, for training and testing machine-learned force fields."""
        source = """Configs marked NOT published above were generated or supplied locally (their `split_manifest.json`
holds the archive's md5 and how it was made). The published TM23 data: Materials Cloud Archive, DOI
"""
    else:
        about = """Frames of *ab initio* molecular dynamics of d-block metals from the TM23 benchmark
(Owen, Torrisi et al., *npj Comput. Mater.* **10**, 92 (2024)): VASP/PBE energies, forces and stresses
of periodic cells at 0.25, 0.75 and 1.25 x the melting temperature ("cold", "warm", "melt"), for
training and testing machine-learned force fields."""
        source = "Original data: Materials Cloud Archive, DOI "
    licence = (" This folder re-packages it without changing any value; cite the original work when you use it."
               if not not_published else " Cite the original work when you use TM23.")  # fmt: skip
    return f"""
{CARD_MARKER}

{about}

## Configs

One config per element and standard split (`split_manifest.json` next to each config's Parquet files
lists the frame ids of every subset and the hash of the archive they came from).

| config | element | split | frames | data |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

```python
from datasets import load_dataset
ds = load_dataset("PATH_OR_REPO_ID", "{example}", split="test")
ds = ds.with_format("torch", dtype=None)   # keep float64 (the default format casts floats to float32)
```

Or with the `tm23data` package, which builds these tables from the original archive:
`load_tm23("Cu", split="full")`.

## Columns and units

| column | meaning |
| --- | --- |
{columns}

Stress follows ASE's convention: `stress = (1/V) dE/d(strain)`, positive = tensile, in eV/Å³
(1 eV/Å³ = 160.2177 GPa).

## Source and licence

{source}[{manifest.DOI}](https://doi.org/{manifest.DOI})
({manifest.RECORD_URL}), licensed {manifest.LICENSE} (Creative Commons Attribution 4.0).{licence}

## Citation

```bibtex
{CITATION}
```
"""


def _size_category(n: int) -> str:
    """The Hub's size category of a dataset with ``n`` rows in all."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


# --------------------------------------------------------------------------------------------------
# Helpers


def _to_parquet(ds, path: Path, selection) -> None:
    """The Arrow table of ``ds`` as Parquet, with the HF features (schema metadata ``huggingface``, as
    ``Dataset.to_parquet`` writes it) and where the data came from (``tm23data``: origin, split, hashes)."""
    import pyarrow.parquet as pq

    table = ds.data.table if ds._indices is None else ds.flatten_indices().data.table
    meta = dict(table.schema.metadata or {})
    meta[b"tm23data"] = json.dumps({"data_origin": selection.origin.to_json(), "split": selection.split,
                                    "split_hash": selection.hash, "subset": str(ds.split)}).encode()  # fmt: skip
    pq.write_table(table.replace_schema_metadata(meta), str(path))


def _refuse_existing(paths, overwrite: bool) -> None:
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; "
            "pass --overwrite (overwrite=True) to replace, or export into another folder"
        )
