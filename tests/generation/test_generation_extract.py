"""AIMD frame extraction over restarted segments (vasprun.xml, XDATCAR, OUTCAR mixed)."""

from __future__ import annotations

import numpy as np
import pytest

from tm23data.generation import fakevasp
from tm23data.generation.extract import (
    ExtractionError,
    extract_frames,
    find_segments,
    read_extracted,
    write_extracted,
)
from tm23data.generation.settings import MDSettings
from tm23data.generation.vaspout import TruncatedOutputError

#: 5 fs steps, 10 fs equilibration (2 steps), a frame every 10 fs (2 steps), 4 frames: steps 4, 6, 8, 10.
MD = MDSettings(timestep_fs=5, equilibration_fs=10, interval_fs=10, n_frames=4)


def _trajectory(n, seed=0):
    """n MD configurations of a 31-atom Cu cell; configuration k is displaced by k * 0.01 Å along x, so each
    frame's step can be recognised from its positions."""
    from ase.build import bulk

    base = bulk("Cu", "fcc", a=3.62, cubic=True).repeat(2)
    del base[5]
    base.positions += np.random.default_rng(seed).normal(0, 0.05, base.positions.shape)
    out = []
    for k in range(n):
        a = base.copy()
        a.positions[:, 0] += 0.01 * (k + 1)  # step k + 1
        out.append(a)
    return out


INCAR = {"IBRION": 0, "POTIM": 5.0, "NSW": 99, "NBLOCK": 1, "NELM": 60, "EDIFF": 1e-5}


def _write_segment(folder, images, kind, incar=INCAR, **kw):
    folder.mkdir(parents=True)
    (folder / "INCAR").write_text("".join(f"{k} = {v}\n" for k, v in incar.items()))
    if kind == "vasprun":
        (folder / "vasprun.xml").write_text(fakevasp.vasprun_text(images, incar, n_scf=5, labels=False, **kw))
    elif kind == "xdatcar":
        (folder / "XDATCAR").write_text(fakevasp.xdatcar_text(images, **kw))
    elif kind == "outcar":
        (folder / "OUTCAR").write_text(fakevasp.outcar_text(images, incar, n_scf=5, **kw))


def _step_of(atoms, traj) -> int:
    """1-based step whose configuration ``atoms`` is (positions modulo the cell)."""
    for k, ref in enumerate(traj):
        frac = np.linalg.solve(ref.cell.array.T, (atoms.positions - ref.positions).T).T
        if np.abs((frac - np.round(frac)) @ ref.cell.array).max() < 1e-4:
            return k + 1
    raise AssertionError("configuration not in the trajectory")


def test_segments_in_three_formats_give_the_protocol_frames(tmp_path):
    traj = _trajectory(11)
    _write_segment(tmp_path / "seg000", traj[0:4], "vasprun")
    _write_segment(tmp_path / "seg001", traj[4:7], "xdatcar")
    _write_segment(tmp_path / "seg002", traj[7:11], "outcar")
    (tmp_path / "seg010").mkdir()  # numeric order, not lexical: seg010 would come after seg002 anyway
    (tmp_path / "seg010" / "XDATCAR").write_text(fakevasp.xdatcar_text(_trajectory(1, seed=5)))
    segs = find_segments(tmp_path)
    assert [p.name for p in segs] == ["seg000", "seg001", "seg002", "seg010"]
    out = extract_frames(segs[:3], MD)
    # step 1 is the starting structure (t = 0): step k is at (k - 1) x 5 fs
    assert out.steps.tolist() == [4, 6, 8, 10] and out.times_fs.tolist() == [15, 25, 35, 45]
    assert [_step_of(a, traj) for a in out.atoms] == [4, 6, 8, 10]
    assert out.n_steps_available == 11 and any("1 MD steps beyond" in n for n in out.notes)
    assert [s.split("/")[-2] for s in out.sources] == ["seg000", "seg001", "seg002", "seg002"]
    write_extracted(tmp_path / "out", out)
    frames, meta = read_extracted(tmp_path / "out")
    assert len(frames) == 4 and meta["steps"] == [4, 6, 8, 10]
    assert np.allclose(frames[2].positions, out.atoms[2].positions)


def test_restart_from_the_last_configuration_is_not_counted_twice(tmp_path):
    traj = _trajectory(10)
    _write_segment(tmp_path / "seg000", traj[0:5], "xdatcar")
    _write_segment(tmp_path / "seg001", traj[4:10], "xdatcar")  # starts again at step 5
    out = extract_frames(find_segments(tmp_path), MD)
    assert [_step_of(a, traj) for a in out.atoms] == [4, 6, 8, 10]
    assert any("repeats the last of the previous segment" in n for n in out.notes)


def test_too_short_truncated_and_inconsistent_runs(tmp_path):
    traj = _trajectory(9)
    _write_segment(tmp_path / "a" / "seg000", traj[:5], "xdatcar")
    _write_segment(tmp_path / "a" / "seg001", traj[5:9], "xdatcar")
    with pytest.raises(ExtractionError, match=r"holds 9 MD steps \(0.04 ps\).*need 10 steps.*Resubmit the AIMD"):
        extract_frames(find_segments(tmp_path / "a"), MD)
    # a segment cut short in the middle of a configuration
    _write_segment(tmp_path / "b" / "seg000", traj[:5], "xdatcar", truncate_last=True)
    _write_segment(tmp_path / "b" / "seg001", _trajectory(11)[5:11], "xdatcar")
    with pytest.raises(TruncatedOutputError, match=r"seg000/XDATCAR, line \d+"):
        extract_frames(find_segments(tmp_path / "b"), MD)
    out = extract_frames(find_segments(tmp_path / "b"), MD, allow_truncated=True)
    assert len(out) == 4 and any("incomplete and was dropped" in n for n in out.notes)
    # a vasprun.xml cut short is skipped for the XDATCAR of the same segment (auto), but is an error if forced
    _write_segment(tmp_path / "c" / "seg000", traj[:9], "vasprun", truncate_after=6)
    (tmp_path / "c" / "seg000" / "XDATCAR").write_text(fakevasp.xdatcar_text(_trajectory(10)))
    assert len(extract_frames(find_segments(tmp_path / "c"), MD)) == 4
    with pytest.raises(TruncatedOutputError, match="vasprun.xml, line"):
        extract_frames(find_segments(tmp_path / "c"), MD, source="vasprun")
    # another time step than the protocol's
    _write_segment(tmp_path / "d" / "seg000", traj, "vasprun", incar={**INCAR, "POTIM": 2.0})
    with pytest.raises(ExtractionError, match="POTIM = 2 fs"):
        extract_frames(find_segments(tmp_path / "d"), MD)
    # not an MD run
    _write_segment(tmp_path / "e" / "seg000", traj, "outcar", incar={**INCAR, "IBRION": -1})
    with pytest.raises(ExtractionError, match="IBRION = -1"):
        extract_frames(find_segments(tmp_path / "e"), MD)


def test_nblock_records(tmp_path):
    traj = _trajectory(10)
    _write_segment(tmp_path / "seg000", traj[1::2], "xdatcar", incar={**INCAR, "NBLOCK": 2})  # steps 2, 4, ..., 10
    out = extract_frames(find_segments(tmp_path), MD)
    assert [_step_of(a, traj) for a in out.atoms] == [4, 6, 8, 10]
    (tmp_path / "seg000" / "INCAR").write_text("IBRION = 0\nPOTIM = 5\nNBLOCK = 3\n")
    with pytest.raises(ExtractionError, match="NBLOCK"):
        extract_frames(find_segments(tmp_path), MD)
