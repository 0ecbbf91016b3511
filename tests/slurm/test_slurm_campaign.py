"""The HPC path end to end on a real SLURM with the stand-in VASP: vasp-inputs -> submit aimd -> label
inputs -> submit labels -> collect -> the archive loads; in a folder with a space, moved between the AIMD
and the labels, with a relative POTCAR folder, submitted with `--export=NONE` (a common site default: the
jobs get none of the submitting shell's environment, so nothing in them may rely on it)."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
from helpers import campaign_args, potcars, submissions, wait_idle

from tm23data import elements
from tm23data.cli import main
from tm23data.generation.campaign import Campaign


def test_campaign_end_to_end_moved_and_with_a_space(tmp_path, slurm, tm23_home, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    potcars(tmp_path / "my pots")
    root = tmp_path / "first place" / "camp"
    # a relative slurm.potcar_dir is stored absolute: the jobs run in other folders
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd",
                 *campaign_args(tmp_path, "--set", "slurm.extra_sbatch=--export=NONE",
                                potcar_dir="my pots/paw")]) == 0  # fmt: skip
    assert json.loads((root / "campaign.json").read_text())["settings"]["slurm"]["potcar_dir"] == str(
        tmp_path / "my pots" / "paw"
    )
    assert '#SBATCH --output="' in (root / "Cu" / "cold" / "aimd" / "aimd.sbatch").read_text()
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0
    wait_idle()
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0  # everything done: nothing submitted
    assert len(submissions(root)) == 3
    for regime in elements.REGIMES:
        assert (root / "Cu" / regime / "aimd" / "STATUS").read_text() == "done\n"
        assert (root / "Cu" / regime / "aimd" / "seg000" / "POTCAR").read_text() == "stand-in PAW_PBE Cu_pv\n"
    # the campaign moves (another file system, a new user folder): its jobs run where it is now
    moved = tmp_path / "second place" / "camp 2"
    moved.parent.mkdir()
    shutil.move(root, moved)
    assert main(["vasp-inputs", str(moved), "--stage", "labels"]) == 0
    assert main(["slurm", "submit", str(moved), "--stage", "labels"]) == 0
    wait_idle()
    assert str(root) not in (moved / "Cu" / "cold" / "labels" / "labels.sbatch").read_text()
    capsys.readouterr()
    assert main(["slurm", "status", str(moved)]) == 0
    out = capsys.readouterr().out
    assert out.count(" done") >= 3 and "3/3" in out, out
    assert main(["collect", str(moved), str(tmp_path / "out.zip"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    md5 = out.split("md5:")[1].split()[0]
    assert f"tm23 import {tmp_path / 'out.zip'} --md5 {md5}" in out and f"export TM23_MD5={md5}" in out
    assert (tmp_path / "out.zip.md5").read_text() == f"{md5}  out.zip\n"
    assert Campaign.open(moved).meta["archives"][-1]["md5"] == md5
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        prov = json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))
    # the stand-in names itself in its output, so the archive can never pass for VASP labels
    assert prov["calculator"] == "vasp" and prov["published_tm23"] is False
    assert prov["labels"]["programs"] == ["fakevasp 5.4.1"] and prov["labels"]["potcars"] == {"Cu": "Cu_pv"}
    assert prov["settings"]["md"]["n_frames"] == 3
    assert len(list((moved / "logs").glob("*-labels-*.out"))) == 3  # the label tasks wrote into the moved folder
    assert main(["import", str(tmp_path / "out.zip"), "--md5", md5]) == 0
    monkeypatch.setenv("TM23_MD5", md5)
    from tm23data import load_tm23

    ds = load_tm23("Cu", progress=False)
    assert len(ds["train"]) == 6 and len(ds["test"]) == 3 and set(ds["test"]["regime"]) == set(elements.REGIMES)
    # the labels are what the stand-in VASP computed (EMT) at those positions, in ASE units and sign
    from ase.calculators.emt import EMT

    atoms = load_tm23("Cu", format="ase", subset="test", progress=False)[0]
    ref = atoms.copy()
    ref.calc = EMT()
    assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-6)
    assert atoms.get_stress() == pytest.approx(ref.get_stress(), abs=1e-7)


def test_derived_label_campaign_runs_on_the_scheduler(tmp_path, slurm, capsys):
    """A derived label set (SIGMA = 1.0 eV on a finished campaign's frames) goes through `tm23 slurm submit`
    like any campaign: label arrays only, then an archive whose provenance names the parent and the change."""
    parent = tmp_path / "parent"
    assert main(["vasp-inputs", str(parent), "Cu", "--stage", "aimd", *campaign_args(tmp_path),
                 "--supercell-rule", "vectors"]) == 0  # fmt: skip
    assert main(["slurm", "submit", str(parent), "--stage", "aimd"]) == 0
    wait_idle()
    assert main(["vasp-inputs", str(parent), "--stage", "labels"]) == 0
    new = tmp_path / "sigma1"
    assert main(["derive-labels", str(parent), str(new), "--sigma", "1.0", "--no-progress"]) == 0
    assert main(["slurm", "submit", str(new), "--stage", "aimd"]) == 1  # a derived campaign runs no AIMD
    assert main(["slurm", "submit", str(new), "--stage", "labels"]) == 0
    assert [s["stage"] for s in submissions(new)] == ["labels"] * 3
    wait_idle()
    capsys.readouterr()
    assert main(["slurm", "status", str(new)]) == 0
    assert capsys.readouterr().out.count("/labels  3/3") == 3
    assert not list((parent / "Cu" / "cold" / "labels" / "runs").glob("*/STATUS"))  # the parent was never labelled
    assert main(["collect", str(new), str(tmp_path / "sigma1.zip"), "--no-progress"]) == 0
    with zipfile.ZipFile(tmp_path / "sigma1.zip") as zf:
        prov = json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))
    assert prov["change"] == {"SIGMA": 1.0} and prov["derived_from"]["campaign"] == str(parent)
