"""Provenance that travels with the data: every output of a generated archive says it is not the published
TM23 data; an archive in the published format says it is published only when its md5 is the published one."""

from __future__ import annotations

import json

import ase.db
import ase.io
import matplotlib
import numpy as np
import pyarrow.parquet as pq
import pytest

from tm23data import load_tm23, manifest
from tm23data.archive import write_archive
from tm23data.cli import main
from tm23data.export import export
from tm23data.fetch import import_archive
from tm23data.generation.rdf import plot_rdf, rdf_from_store
from tm23data.generation.synthetic import synthetic_members
from tm23data.provenance import Origin, combined
from tm23data.store import load_store

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text, so the test can read the figure


@pytest.fixture
def published_format(tm23_home, tmp_path, monkeypatch):
    """An archive in the published format (no PROVENANCE.json), imported; returns its md5."""
    path = tmp_path / manifest.ARCHIVE_NAME
    md5 = write_archive(path, {"Cu": synthetic_members("Cu", 3, 2)})
    monkeypatch.setenv("TM23_MD5", md5)
    import_archive(path)
    return md5


@pytest.fixture
def published(published_format, monkeypatch):
    """The published-format archive taken as the published one (its md5 is made the published md5)."""
    monkeypatch.setattr(manifest, "ARCHIVE_MD5", published_format)
    monkeypatch.delenv("TM23_MD5")
    return published_format


def _outputs(tmp_path) -> dict[str, str]:
    """The text each output carries about the data's origin, for Cu's full split."""
    out = {}
    for fmt in ("extxyz", "parquet", "asedb", "hf"):
        export("Cu", "full", fmt, tmp_path / fmt, progress=False)
    out["extxyz"] = ase.io.read(tmp_path / "extxyz" / "Cu_full_test.xyz", 0).info["data_origin"]
    schema = pq.read_schema(tmp_path / "parquet" / "Cu_full_test.parquet").metadata
    assert b"huggingface" in schema  # the HF features stay beside ours
    out["parquet"] = json.loads(schema[b"tm23data"])["data_origin"]["summary"]
    with ase.db.connect(str(tmp_path / "asedb" / "Cu_full.db")) as db:
        meta = db.metadata
    out["asedb"] = meta["title"] + " | " + meta["data_origin"]["summary"]
    out["hf_card"] = (tmp_path / "hf" / "README.md").read_text()
    out["hf_view"] = load_tm23("Cu", "full", progress=False)["test"].info.description
    store = load_store("Cu", progress=False)
    rdf = rdf_from_store(store, progress=False)
    fig_path = plot_rdf(rdf, tmp_path / "rdf.svg")
    out["rdf_figure"] = fig_path.read_text()
    return out


def test_generated_archive_says_so_everywhere(cached, tmp_path, capsys):
    origin = load_store("Cu", progress=False).origin
    assert origin.kind == "generated" and not origin.published and origin.method == "EMT"
    outputs = _outputs(tmp_path)
    for name, text in outputs.items():
        assert "NOT" in text and "published TM23" in text, name
    card = outputs["hf_card"]
    assert "WARNING: NOT THE PUBLISHED TM23 DATA" in card
    assert "VASP/PBE energies" not in card and "without changing any value" not in card
    assert main(["stats", "Cu"]) == 0
    assert "Cu: NOT the published TM23 data" in capsys.readouterr().out
    assert main(["stats", "Cu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Cu"]["data_origin"]["kind"] == "generated"


def test_published_archive_is_named_published(published, tmp_path, capsys):
    origin = load_store("Cu", progress=False).origin
    assert origin.published and origin.summary().startswith("published TM23 archive")
    outputs = _outputs(tmp_path)
    for name, text in outputs.items():
        assert "NOT" not in text.replace("NOTE", ""), name
        assert "published TM23" in text or name == "asedb", name
    assert "VASP/PBE energies" in outputs["hf_card"] and "without changing any value" in outputs["hf_card"]
    assert main(["stats", "Cu"]) == 0
    assert "Cu: published TM23 archive" in capsys.readouterr().out


def test_published_format_with_another_md5_is_not_called_published(published_format, tmp_path):
    origin = load_store("Cu", progress=False).origin
    assert origin.kind == "unknown" and "NOT verified as the published TM23 data" in origin.summary()
    card_path = export("Cu", "full", "hf", tmp_path, progress=False)[-1]
    assert "WARNING: NOT THE PUBLISHED TM23 DATA" in card_path.read_text()


def test_a_card_mixing_published_and_generated_configs_warns(published, cached, tmp_path, monkeypatch):
    """Two configs in one HF folder: the generated one (cached, via TM23_MD5) and the published one."""
    export("Cu", "full", "hf", tmp_path, progress=False)  # generated (TM23_MD5 of the synthetic archive)
    monkeypatch.delenv("TM23_MD5")
    export("Cu", "cold", "hf", tmp_path, progress=False)  # published
    card = (tmp_path / "README.md").read_text()
    assert "1 of the 2 configs" in card and "`Cu_full`: NOT the published TM23 data" in card
    rows = {line.split("|")[1].strip(): line for line in card.splitlines() if line.startswith("| `Cu_")}
    assert "NOT published" in rows["`Cu_full`"] and "published TM23 (VASP/PBE)" in rows["`Cu_cold`"]


def test_a_mix_never_reads_as_published():
    pub, gen = Origin("published", manifest.ARCHIVE_MD5), Origin("generated", "0" * 32, {"calculator": "EMT"})
    assert combined([pub, gen]) is gen and combined([pub]) is pub
    assert Origin.of(manifest.ARCHIVE_MD5, "published TM23 archive (VASP 5.4.1, PBE)").published
    assert Origin.of("1" * 32, "published TM23 archive (VASP 5.4.1, PBE)").kind == "unknown"
    assert gen.short() == "NOT TM23 DFT data: EMT"
    assert np.all([o.to_json()["published"] == o.published for o in (pub, gen)])
