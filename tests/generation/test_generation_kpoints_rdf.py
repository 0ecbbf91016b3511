"""k-point convergence helper and radial distribution functions."""

from __future__ import annotations

import numpy as np
import pytest

from tm23data.generation.kpoints import MeshResults, choose_kmesh, parse_mesh, read_convergence_dir
from tm23data.generation.rdf import pair_histogram, rdf_from_store, rdf_of_frames


def _results(noise: dict, natoms=53, n_frames=3, seed=0):
    """Meshes whose energy per atom and forces differ from the converged values by the given amounts."""
    rng = np.random.default_rng(seed)
    e0 = rng.normal(-500, 1, n_frames)
    f0 = [rng.normal(0, 1, (natoms, 3)) for _ in range(n_frames)]
    out = []
    for mesh, (de, df) in noise.items():
        out.append(MeshResults(mesh, [e + de * natoms for e in e0], [natoms] * n_frames,
                               [f + df for f in f0]))  # fmt: skip
    return out


def test_first_mesh_within_1_meV_per_atom_and_5_meV_per_A():
    results = _results({
        (1, 1, 1): (0.050, 0.080),
        (2, 2, 2): (0.004, 0.010),
        (3, 3, 3): (0.0008, 0.003),  # first within both tolerances
        (4, 4, 4): (0.0002, 0.001),
        (6, 6, 6): (0.0, 0.0),  # reference
    })  # fmt: skip
    choice = choose_kmesh(list(reversed(results)))  # order of the input does not matter
    assert choice.mesh == (3, 3, 3) and choice.reference == (6, 6, 6) and choice.converged
    assert [r["ok"] for r in choice.rows] == [False, False, True, True, True]
    assert choice.rows[2]["energy_noise"] == pytest.approx(0.0008)
    assert "<- chosen" in choice.table()
    # the force tolerance alone can decide
    results[2] = _results({(3, 3, 3): (0.0001, 0.006)})[0]
    assert choose_kmesh(results).mesh == (4, 4, 4)


def test_a_lucky_coarse_mesh_is_not_taken_and_unshown_convergence_is_flagged():
    results = _results({(1, 1, 1): (0.0001, 0.001), (2, 2, 2): (0.003, 0.02), (3, 3, 3): (0.0, 0.0)})
    choice = choose_kmesh(results)
    assert choice.mesh == (3, 3, 3) and not choice.converged and "add denser meshes" in choice.message
    with pytest.raises(ValueError, match="two meshes"):
        choose_kmesh(results[:1])
    with pytest.raises(ValueError, match="same frames"):
        choose_kmesh([results[0], _results({(3, 3, 3): (0, 0)}, n_frames=2)[0]])
    assert parse_mesh("3x3x5") == (3, 3, 5)
    with pytest.raises(ValueError):
        parse_mesh("3x3")


def test_convergence_runs_read_from_vasp_outputs(tmp_path):
    """Runs laid out as `tm23 kpoints write` does, with VASP-format outputs (the stand-in's writer)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    from tm23data.generation import fakevasp

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    atoms.calc = EMT()
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    incar = {"NELM": 60, "EDIFF": 1e-6, "IBRION": -1, "ISIF": 2}
    for mesh, shift in (("1x1x1", 0.2), ("2x2x2", 0.01), ("4x4x4", 0.0)):
        for i in ("0000", "0001"):
            run = tmp_path / mesh / "runs" / i
            run.mkdir(parents=True)
            a = atoms.copy()
            a.calc = SinglePointCalculator(a, energy=e + shift, forces=f + shift / 10, stress=s)
            (run / "OUTCAR").write_text(fakevasp.outcar_text([a], incar))
    (tmp_path / "2x2x2" / "runs" / "0002").mkdir()  # a run that never happened: skipped
    results, problems = read_convergence_dir(tmp_path)
    assert sorted(r.mesh for r in results) == [(1, 1, 1), (2, 2, 2), (4, 4, 4)]
    assert all(len(r.energies_eV) == 2 for r in results)
    assert choose_kmesh(results).mesh == (2, 2, 2)  # 0.01 eV / 32 atoms = 0.3 meV/atom, forces 1 meV/Å


# --------------------------------------------------------------------------------------------------
# RDF


def test_rdf_matches_ase_and_physics():
    from ase.build import bulk
    from ase.geometry.rdf import get_rdf

    from tm23data.frames import Frames

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    atoms.rattle(0.1, seed=0)
    frames = Frames.from_atoms([atoms])
    r, g = rdf_of_frames(frames, [0], r_max=5.0, n_bins=50)
    g_ase, r_ase = get_rdf(atoms, 5.0, 50)
    n = len(atoms)  # ASE normalises by N^2, we by N (N - 1), so that an ideal gas has g = 1 exactly
    assert np.allclose(r, r_ase) and np.allclose(g, g_ase * n / (n - 1), rtol=1e-10, atol=1e-10)
    assert r[np.argmax(g)] == pytest.approx(3.6 / np.sqrt(2), abs=0.1)  # fcc first shell at a/sqrt(2)
    # beyond half the cell (ASE refuses): an ideal gas has g = 1 on average
    rng = np.random.default_rng(0)
    gas = [atoms.copy() for _ in range(20)]
    for a in gas:
        a.positions = rng.uniform(0, 10.8, (len(a), 3))
    r, g = rdf_of_frames(Frames.from_atoms(gas), range(20), r_max=12.0, n_bins=24)
    assert np.mean(g[12:]) == pytest.approx(1.0, abs=0.03)
    # few atoms, r far beyond the cell: an atom's own images must not count (they gave g = N / (N - 1) = 1.33)
    from ase import Atoms

    small = [Atoms("Cu4", positions=rng.uniform(0, 5.0, (4, 3)), cell=[5.0] * 3, pbc=True) for _ in range(300)]
    r, g = rdf_of_frames(Frames.from_atoms(small), range(300), r_max=12.0, n_bins=12)
    assert np.mean(g[:5]) == pytest.approx(1.0, abs=0.05)  # r < 5 Å: no self-images
    assert np.mean(g[5:]) == pytest.approx(1.0, abs=0.03)  # 5-12 Å: up to 3 cells away
    # counts are symmetric and cover every periodic image
    counts = pair_histogram(atoms.positions, atoms.cell.array, 3.0, 30)
    assert counts.sum() == len(atoms) * 12  # 12 nearest neighbours each within 3 Å


def test_rdf_command_on_a_store(cached, tmp_path, capsys):
    from tm23data.cli import main
    from tm23data.store import load_store

    store = load_store("Cu", progress=False)
    rdf = rdf_from_store(store, r_max=4.5, n_bins=45, progress=False)
    assert set(rdf.g) == {"cold", "warm", "melt"} and rdf.frames == {"cold": 12, "warm": 12, "melt": 12}
    peak = lambda g: g.max()  # noqa: E731
    assert peak(rdf.g["cold"]) > peak(rdf.g["warm"]) > peak(rdf.g["melt"])  # order fades with heat
    out = tmp_path / "cu.png"
    assert (
        main(["rdf", "Cu", "--out", str(out), "--csv", str(tmp_path / "cu.csv"), "--every", "2", "--no-progress"]) == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "cu.csv").read_text().splitlines()
    assert lines[0] == "r_A,g_cold,g_warm,g_melt" and len(lines) == 121
    assert "cold (6 frames)" in capsys.readouterr().out


def test_force_criterion_defaults_to_the_largest_component_difference():
    """One atom 8 meV/Å off on the coarse mesh: RMS over 32 atoms (~0.8 meV/Å) passes, the max (default) not."""
    rng = np.random.default_rng(1)
    ref_f = rng.normal(size=(32, 3))
    off = ref_f.copy()
    off[5, 0] += 0.008
    meshes = [MeshResults((2, 2, 2), [-100.0], [32], [off]), MeshResults((3, 3, 3), [-100.0], [32], [ref_f.copy()]),
              MeshResults((6, 6, 6), [-100.0], [32], [ref_f.copy()])]  # fmt: skip
    assert choose_kmesh(meshes).mesh == (3, 3, 3)
    assert choose_kmesh(meshes, force_metric="rms").mesh == (2, 2, 2)
