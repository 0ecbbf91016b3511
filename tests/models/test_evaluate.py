"""Any model scored on TM23: exact on a case with a known answer (EMT on an EMT-labelled archive), the energy
shift, resuming, the result schema, the CLI and the leaderboard; CHGNet and SevenNet-0 on a tiny archive."""

import csv
import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from support import needs

from tm23data.baselines import results
from tm23data.baselines.evaluate import evaluate, fit_energy_shift
from tm23data.baselines.report import write_report
from tm23data.cli import main
from tm23data.metrics import Evaluator

#: extxyz stores forces with 8 decimals: re-evaluating EMT reproduces them to half the last digit.
FORCE_STORAGE = 5e-9 + 1e-12


class OffsetEMT(EMT):
    """EMT with every energy moved by ``offset`` eV/atom: a model with another energy reference."""

    def __init__(self, offset):
        super().__init__()
        self.offset = offset

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        super().calculate(atoms, properties, system_changes or ["positions", "numbers", "cell", "pbc"])
        self.results["energy"] += self.offset * len(self.atoms)
        self.results["free_energy"] = self.results["energy"]


def _recomputed(res):
    """The metrics again, from predictions.npz alone."""
    p = res.predictions()
    ev = Evaluator(p["natoms"], p["ref_energy"], p["ref_forces"], p.get("ref_stress"), p["regime"])
    return ev.eval({"energy": p["energy"], "forces": p["forces"], "stress": p.get("stress")})


def test_emt_on_emt_archive_is_exact_through_shift_and_report(cached, tmp_path):
    res = evaluate("emt", "Cu", "full", out=tmp_path / "runs", batch_size=4, progress=False)
    m, ms = res.metrics, res.data["metrics_shifted"]
    assert m["energy_per_atom"]["mae"] < 1e-9 and ms["energy_per_atom"]["mae"] < 1e-9
    assert m["stress"]["mae"] < 1e-9
    assert 0 < m["forces"]["mae"] < FORCE_STORAGE  # only the stored digits differ
    assert abs(res.data["energy_shift"]["eV_per_atom"]) < 1e-9
    assert set(m["per_regime"]) == {"cold", "warm", "melt"}
    for regime in m["per_regime"].values():
        assert regime["energy_per_atom"]["mae"] < 1e-9
    assert res.data["n_frames"]["test"] == len(res.predictions()["energy"]) == 9
    assert res.data["model_info"]["package"] == "ase" and res.data["archive_md5"] == cached
    assert res.data["data_source"]["published"] is False and res.data["data_source"]["provenance"]
    assert _recomputed(res)["forces"]["mae"] == pytest.approx(m["forces"]["mae"], rel=1e-12)
    rep = write_report([tmp_path / "runs"], tmp_path / "rep")
    with open(rep["files"]["leaderboard"]) as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["model"] == "emt" and row["metals"] == "1" and float(row["E % raw mean"]) < 1e-6
    assert float(row["F % late (X-XII)"]) < 1e-6 and row["F % early (IV-IX)"] == "-"
    md = open(rep["files"]["md"]).read()
    assert "Leaderboard" in md and "shifted" in md and "not the published TM23 archive" in md
    assert (tmp_path / "rep" / "periodic_table.png").stat().st_size > 1000


def test_energy_shift_removes_a_constant_reference(cached, tmp_path):
    res = evaluate(OffsetEMT(-0.37), "Cu", "cold", out=tmp_path, progress=False)
    assert res.metrics["energy_per_atom"]["mae"] == pytest.approx(0.37, abs=1e-9)  # raw: the offset
    assert res.data["metrics_shifted"]["energy_per_atom"]["mae"] < 1e-9  # shifted: exact again
    assert res.data["energy_shift"]["eV_per_atom"] == pytest.approx(0.37, abs=1e-9)
    assert res.metrics["forces"]["mae"] == res.data["metrics_shifted"]["forces"]["mae"] < FORCE_STORAGE
    p = res.predictions()
    assert fit_energy_shift(p["train_energy"], p["train_ref_energy"], p["train_natoms"]) == pytest.approx(0.37)


def test_runs_resume_per_element_and_failures_are_kept_apart(cached, tmp_path):
    first = evaluate("emt", "Cu", "cold", out=tmp_path, progress=False)
    # EMT has no titanium: Cu is reused, Ti fails and leaves only a .failed folder
    with pytest.raises(NotImplementedError):
        evaluate("emt", "Cu,Ti", "cold", out=tmp_path, progress=False)
    assert (tmp_path / "emt_Ti_cold.failed").is_dir() and not (tmp_path / "emt_Ti_cold").exists()
    again = evaluate("emt", ["Cu"], "cold", out=tmp_path, progress=False)[0]
    assert again.data["created"] == first.data["created"]
    with pytest.raises(ValueError, match="another model, split or frame count"):
        evaluate("emt", "Cu", "cold", out=tmp_path, progress=False, max_frames=2)
    redone = evaluate("emt", "Cu", "cold", out=tmp_path, progress=False, overwrite=True, max_frames=2)
    assert redone.data["n_frames"]["test"] == 3 and len(redone.predictions()["energy"]) == 2


def test_cli_evaluate_a_factory_then_report(cached, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["evaluate", "ase.calculators.emt:EMT", "--elements", "Cu", "--split", "cold", "--out", str(out),
                 "--no-progress", "--batch-size", "1"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "E % shifted" in printed and "Cu" in printed
    data = json.loads((out / "ase.calculators.emt-EMT_Cu_cold" / "result.json").read_text())
    assert data["schema"] == results.SCHEMA and data["kind"] == "evaluation"
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--model", "ase.calculators.emt:EMT"]) == 0
    assert "F % mean" in capsys.readouterr().out
    assert main(["evaluate", "no-such-model", "--elements", "Cu", "--out", str(out)]) == 1
    assert "unknown model" in capsys.readouterr().err


def _pretrained_run(model, tmp_path):
    res = evaluate(model, "Cu", "cold", out=tmp_path, max_frames=1, shift_frames=1, batch_size=4, progress=False)
    m = res.metrics
    assert 0 < m["forces"]["mae"] < 1.0  # eV/Å: a universal model of rattled fcc Cu is not wildly off
    assert res.data["metrics_shifted"]["energy_per_atom"]["mae"] < 0.5
    assert np.isfinite(m["stress"]["mae"]) and res.data["model_info"]["weights_sha256"]
    assert _recomputed(res)["energy_per_atom"]["mae"] == pytest.approx(m["energy_per_atom"]["mae"], rel=1e-9)
    assert evaluate(model, "Cu", "cold", out=tmp_path, max_frames=1, shift_frames=1,
                    progress=False).data["created"] == res.data["created"]  # fmt: skip


@needs("chgnet")
def test_chgnet_on_a_tiny_archive(cached, tmp_path, chgnet_model):
    _pretrained_run(chgnet_model, tmp_path)


@needs("sevenn")
def test_sevennet0_on_a_tiny_archive(cached, tmp_path, sevennet_model):
    _pretrained_run(sevennet_model, tmp_path)
