"""Derived label sets (paper, Fig. 9): a finished campaign's frames relabelled with SIGMA = 1.0 eV through the
stand-in VASP (the planned array tasks run by hand, as a node would; through the real scheduler in
tests/slurm), an archive whose provenance names the parent and the change, the parent's files unchanged byte for byte; NELECT from the POTCAR's ZVAL on a
hand-computed case, from an archive parent."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from campaign_jobs import campaign_args, potcars, run_script, run_tasks

from tm23data import elements
from tm23data.archive import Archive
from tm23data.cli import main
from tm23data.frames import Frames
from tm23data.hashes import file_md5


def _tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def _provenance(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))


def _frames(path: Path, element: str = "Cu") -> dict[str, Frames]:
    with Archive(path) as archive:
        return {r: Frames.concat(archive.regime_frames(element, r)) for r in elements.REGIMES}


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A finished Cu campaign (2 frames per regime, 31 atoms) labelled by the stand-in VASP, and its archive."""
    tmp = tmp_path_factory.mktemp("parent")
    paw = potcars(tmp)
    root = tmp / "camp"
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", *campaign_args(paw)]) == 0
    for regime in elements.REGIMES:
        run_script(root / "Cu" / regime / "aimd" / "aimd.sbatch")
    assert main(["vasp-inputs", str(root), "--stage", "labels"]) == 0
    for regime in elements.REGIMES:
        labels = root / "Cu" / regime / "labels"
        (labels / "tasks").mkdir()
        (labels / "tasks" / "all.txt").write_text(" ".join(p.stem for p in sorted((labels / "poscars").iterdir())) + "\n")
        run_tasks(labels / "labels.sbatch", labels / "tasks" / "all.txt")
    archive = tmp / "parent.zip"
    assert main(["collect", str(root), str(archive), "--no-progress"]) == 0
    return SimpleNamespace(root=root, zip=archive, md5=file_md5(archive), paw=paw)


def test_derived_smearing_campaign_leaves_the_parent_alone(parent, tmp_path, capsys):
    from ase.calculators.emt import EMT
    from ase.calculators.lj import LennardJones

    from tm23data.generation.campaign import Campaign
    from tm23data.generation.fakevasp import PARTNER
    from tm23data.generation.submission import plan

    before = _tree(parent.root)
    new = tmp_path / "sigma1"
    assert main(["derive-labels", str(parent.root), str(new), "--sigma", "1.0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "SIGMA = 1 eV" in out and f"archive md5 {parent.md5}" in out
    for regime in elements.REGIMES:
        assert "SIGMA = 1.0\n" in (new / "Cu" / regime / "labels" / "INCAR").read_text()
        assert "SIGMA = 0.2\n" in (parent.root / "Cu" / regime / "labels" / "INCAR").read_text()
        assert (new / "Cu" / regime / "frames.xyz").read_bytes() == (parent.root / "Cu" / regime / "frames.xyz").read_bytes()
    # no AIMD in a derived campaign: its frames are the parent's
    assert main(["vasp-inputs", str(new), "--stage", "aimd"]) == 1
    assert main(["slurm", "submit", str(new), "--stage", "aimd"]) == 1
    assert capsys.readouterr().err.count("is a derived label campaign") == 2
    # the labels are planned like any campaign's; the array tasks run here as on a node
    planned = plan(Campaign.open(new), "labels", busy={})
    assert len(planned) == 3 and all(p.script.is_relative_to(new) and p.script.name == "labels.sbatch" for p in planned)
    for p in planned:
        tasks = p.script.parent / "tasks" / "t.txt"
        tasks.parent.mkdir(exist_ok=True)
        tasks.write_text("".join(" ".join(t) + "\n" for t in p.tasks))
        run_tasks(p.script, tasks)
    capsys.readouterr()
    assert main(["slurm", "status", str(new)]) == 0
    status = capsys.readouterr().out
    assert "Cu/cold/labels  2/2" in status and "Cu/cold  " not in status, status  # labels only, no AIMD rows
    assert main(["collect", str(new), str(tmp_path / "sigma1.zip"), "--no-progress"]) == 0
    prov = _provenance(tmp_path / "sigma1.zip")
    assert prov["change"] == {"SIGMA": 1.0}
    assert prov["derived_from"]["archive_md5"] == parent.md5
    assert prov["derived_from"]["campaign"] == str(parent.root) and prov["derived_from"]["kind"] == "campaign"
    assert prov["derived_from"]["frames_sha256"]["Cu/cold"] == hashlib.sha256(
        (parent.root / "Cu" / "cold" / "frames.xyz").read_bytes()).hexdigest()  # fmt: skip
    assert prov["what"].startswith(f"derived label set: the frames of {parent.root} relabelled with SIGMA = 1 eV")
    assert prov["settings"]["vasp"]["incar_static"]["SIGMA"] == 1.0 and prov["published_tm23"] is False
    assert "derived_from" not in _provenance(parent.zip)
    # the same frames; the labels are the stand-in's at SIGMA = 1.0 eV: EMT + 0.8 x its Lennard-Jones partner
    old, relabelled = _frames(parent.zip), _frames(tmp_path / "sigma1.zip")
    for regime in elements.REGIMES:
        a, b = old[regime], relabelled[regime]
        assert np.allclose(a.positions, b.positions, atol=1e-6) and len(a) == 2
        for i in range(len(a)):
            atoms = a.to_atoms(i)
            atoms.calc = EMT()
            emt = atoms.get_forces()
            assert np.allclose(a.to_atoms(i).get_forces(), emt, atol=1e-5)  # the parent: the calculator's own
            atoms.calc = LennardJones(**PARTNER, smooth=True)
            assert np.allclose(b.to_atoms(i).get_forces(), emt + 0.8 * atoms.get_forces(), atol=1e-5)
        assert not np.allclose(a.forces, b.forces, atol=1e-3)
    # the parent: not one byte changed, no label stale
    assert _tree(parent.root) == before
    state = Campaign.open(parent.root).refresh_state(write=False)["static"]
    assert all(st["n_done"] == 2 and st["n_stale"] == 0 for st in state.values())
    # the comparison of the two label sets: Fig. 9c's radial and vector force differences per regime
    assert main(["compare-labels", str(parent.zip), str(tmp_path / "sigma1.zip"), "--csv", str(tmp_path / "d.csv"),
                 "--markdown", str(tmp_path / "d.md")]) == 0  # fmt: skip
    rows = (tmp_path / "d.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and rows[1].startswith("Cu,cold,2,62,")
    vector = float(rows[4].split(",")[rows[0].split(",").index("force_vector_eV/Å")])
    assert vector == pytest.approx(np.linalg.norm(
        np.concatenate([relabelled[r].forces - old[r].forces for r in elements.REGIMES]), axis=1).mean(), rel=1e-9)
    assert "SIGMA = 1.0 eV" in (tmp_path / "d.md").read_text()


def test_nelect_from_the_potcar_zval_on_an_archive_parent(parent, tmp_path, capsys):
    from tm23data.generation.labels import parse_static

    new = tmp_path / "plus01"
    # Cu_pv: ZVAL = 17; 31 atoms; +0.1 electrons per atom -> NELECT = 17.1 x 31 = 530.1
    assert main(["derive-labels", str(parent.zip), str(new), "--nelect-per-atom", "+0.1", "--no-progress"]) == 0
    assert "NELECT = 530.1 = (ZVAL 17 +0.1) x 31 atoms" in capsys.readouterr().out
    labels = new / "Cu" / "cold" / "labels"
    assert "\nNELECT = 530.1\n" in (labels / "INCAR").read_text()
    summary = json.loads((labels / "inputs.json").read_text())["nelect"]
    assert (summary["zval"], summary["natoms"], summary["neutral"]) == (17.0, 31, 527.0)
    meta = json.loads((new / "campaign.json").read_text())
    assert meta["change"] == {"NELECT_per_atom": 0.1}
    assert meta["derived_from"]["kind"] == "archive" and meta["derived_from"]["archive_md5"] == parent.md5
    # the stand-in reads NELECT against the POTCAR's ZVAL: q = +0.1 scales its labels by 1 + 0.1 q
    (labels / "tasks").mkdir()
    (labels / "tasks" / "t.txt").write_text("0000 0001\n")
    run_tasks(labels / "labels.sbatch", labels / "tasks" / "t.txt")
    old = _frames(parent.zip)["cold"]
    for i in range(2):
        res = parse_static(labels / "runs" / f"000{i}", old.to_atoms(i))
        assert res.ok, res.message
        assert np.allclose(res.atoms.get_forces(), 1.01 * old.to_atoms(i).get_forces(), atol=1e-5)
    # a later change of the derived campaign's static settings joins its recorded change (and makes its runs stale)
    assert main(["vasp-inputs", str(new), "--stage", "labels", "--set", "vasp.incar_static.ENCUT=600"]) == 0
    assert json.loads((new / "campaign.json").read_text())["change"] == {"NELECT_per_atom": 0.1,
                                                                         "vasp.incar_static.ENCUT": 600}  # fmt: skip
    assert json.loads((new / "state.json").read_text())["static"]["Cu/cold/labels"]["n_stale"] == 2
    assert main(["vasp-inputs", str(new), "--stage", "labels", "--frames", "5"]) == 1
    assert "md.n_frames: " in capsys.readouterr().err
    # without a readable POTCAR there is no ZVAL: an error naming the dataset, and nothing left behind
    assert main(["derive-labels", str(parent.zip), str(tmp_path / "x"), "--nelect-per-atom", "-1",
                 "--set", f"slurm.potcar_dir={tmp_path / 'nowhere'}"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "needs the ZVAL of Cu_pv" in err and "slurm.potcar_dir" in err and not (tmp_path / "x").exists()


def test_derive_refuses_what_would_touch_the_parent_or_change_nothing(parent, tmp_path, capsys):
    assert main(["derive-labels", str(parent.root), str(tmp_path / "same")]) == 1
    assert "nothing to change" in capsys.readouterr().err
    assert main(["derive-labels", str(parent.root), str(parent.root / "inside"), "--sigma", "2"]) == 1
    assert "inside the parent campaign" in capsys.readouterr().err
    assert main(["derive-labels", str(parent.root), str(tmp_path / "md"), "--set", "md.n_frames=5"]) == 1
    assert "keeps the parent's frames" in capsys.readouterr().err
    assert not (parent.root / "inside").exists()


def test_potcar_zvals():
    from tm23data.errors import StepError
    from tm23data.generation.vasp import potcar_zvals

    text = "  PAW_PBE Au 04Oct2007\n   POMASS =  196.966; ZVAL   =   11.000    mass and valenz\n" \
           "  PAW_PBE Os_pv 20Jan2003\n   POMASS =  190.200; ZVAL   =   14.000    mass and valenz\n"  # fmt: skip
    assert potcar_zvals(text) == [11.0, 14.0]
    with pytest.raises(StepError, match="no 'ZVAL = ...' line"):
        potcar_zvals("stand-in PAW_PBE Cu_pv\n", "x/POTCAR")
