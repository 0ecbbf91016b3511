"""Train a small periodic SchNet (PyTorch Geometric) on a TM23 split on CPU and report the paper's errors.

Energies are predicted as a sum over atoms; forces (-dE/dpos) and stress ((1/V) dE/dstrain, ASE sign)
come from autograd through the edge vectors of the periodic graph that ``tm23data.pyg.TM23Dataset``
provides. The errors are the paper's % error (MAE / MAV x 100) from ``tm23data.metrics``.

    python examples/train_pyg.py --element Ti --split cold --steps 300        # the published archive
    python examples/train_pyg.py --synthetic                                  # no download: a small
                                                                              # TM23-format test archive

The PyG ``SchNet`` builds its graph with ``radius_graph`` (not periodic, and it needs torch-cluster), so
this script reuses SchNet's layers (embedding, Gaussian smearing, interaction blocks, readout MLP) on the
periodic graph instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
from torch_geometric.loader import DataLoader
from torch_geometric.nn.models import SchNet
from torch_geometric.utils import scatter
from tqdm.auto import tqdm

from tm23data import Selection
from tm23data.pyg import edge_vectors


class PeriodicSchNet(torch.nn.Module):
    """SchNet layers on a periodic graph; energy = sum over atoms of (scale * output + shift)."""

    def __init__(self, cutoff: float, hidden: int = 64, interactions: int = 3, gaussians: int = 32,
                 shift: float = 0.0, scale: float = 1.0):  # fmt: skip
        super().__init__()
        self.schnet = SchNet(hidden_channels=hidden, num_filters=hidden, num_interactions=interactions,
                             num_gaussians=gaussians, cutoff=cutoff)  # fmt: skip
        self.register_buffer("shift", torch.tensor(float(shift)))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, batch, *, training: bool = False) -> dict[str, torch.Tensor]:
        s = self.schnet
        pos = batch.pos.detach().requires_grad_(True)
        strain = torch.zeros((batch.num_graphs, 3, 3), dtype=pos.dtype, requires_grad=True)
        vectors = edge_vectors(pos, batch.edge_index, batch.cell_shifts, batch.cell, batch.batch, strain)
        distance = vectors.norm(dim=-1)
        h = s.embedding(batch.z)
        edge_attr = s.distance_expansion(distance)
        for block in s.interactions:
            h = h + block(h, batch.edge_index, distance, edge_attr)
        atomic = s.lin2(s.act(s.lin1(h))).squeeze(-1) * self.scale + self.shift
        energy = scatter(atomic, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="sum")
        d_pos, d_strain = torch.autograd.grad(energy.sum(), [pos, strain], create_graph=training)
        volume = torch.linalg.det(batch.cell).abs()
        return {"energy": energy, "forces": -d_pos, "stress": d_strain / volume[:, None, None]}


def evaluate(model, dataset, batch_size: int) -> dict:
    """The paper's metrics of ``model`` on ``dataset`` (predictions in dataset order)."""
    model.eval()
    energy, forces, stress = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        out = model(batch)
        energy.append(out["energy"].detach().double())
        forces.append(out["forces"].detach().double())
        stress.append(out["stress"].detach().double())
    evaluator = dataset.evaluator()
    predictions = {"energy": torch.cat(energy).numpy(), "forces": torch.cat(forces).numpy()}
    if evaluator.stress is not None:
        predictions["stress"] = torch.cat(stress).numpy()
    return evaluator.eval(predictions)


def train(args, archive=None) -> dict:
    torch.manual_seed(args.seed)
    selection = Selection.open(args.element, args.split, archive=archive, progress=False)  # one resolved split
    kwargs = dict(cutoff=args.cutoff, dtype=torch.float32, progress=False)
    train_set, test_set = selection.to_pyg("train", **kwargs), selection.to_pyg("test", **kwargs)
    frames = selection.frames("train")
    per_atom = frames.energy / frames.natoms
    model = PeriodicSchNet(args.cutoff, hidden=args.hidden, interactions=args.interactions,
                           shift=float(per_atom.mean()), scale=float(frames.forces.std()))  # fmt: skip
    # Loss in energy units: per-atom energy (eV), forces (eV/Å x 1 Å) and stress x volume per atom
    # (eV/Å³ x Å³), all divided by the force variance so that the loss starts near 1.
    f_var = max(float(frames.forces.var()), 1e-8)
    has_stress = selection.has_stress("train")
    before = evaluate(model, test_set, args.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps, eta_min=args.lr / 20)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=len(train_set) > args.batch_size)
    step, start = 0, time.perf_counter()
    bar = tqdm(total=args.steps, desc="training", unit="step", disable=not args.log_every)
    while step < args.steps:
        for batch in loader:
            model.train()
            out = model(batch, training=True)
            natoms = batch.natoms.to(out["energy"].dtype)
            loss = args.energy_weight * ((out["energy"] - batch.energy) / natoms).pow(2).mean()
            loss = loss + args.force_weight * (out["forces"] - batch.forces).pow(2).mean()
            if has_stress:
                volume_per_atom = (torch.linalg.det(batch.cell).abs() / natoms)[:, None, None]
                loss = loss + args.stress_weight * ((out["stress"] - batch.stress) * volume_per_atom).pow(2).mean()
            loss = loss / f_var
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            if args.log_every and (step % args.log_every == 0 or step == args.steps):
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if step >= args.steps:
                break
    bar.close()
    after = evaluate(model, test_set, args.batch_size)
    return {"before": before, "after": after, "train_frames": len(train_set), "test_frames": len(test_set),
            "seconds": time.perf_counter() - start}  # fmt: skip


def report(result: dict, args) -> None:
    print(f"\n{args.element}, split {args.split}: {result['train_frames']} training / {result['test_frames']} test "
          f"frames, {args.steps} steps in {result['seconds']:.1f} s (CPU)")  # fmt: skip
    print(f"{'':12}{'energy/atom':>14}{'forces':>12}{'stress':>12}   (% error = MAE / MAV x 100)")
    for label in ("before", "after"):
        m = result[label]
        quantities = ("energy_per_atom", "forces", "stress")
        cells = [f"{m[q]['percent']:11.2f}%" if q in m else f"{'-':>12}" for q in quantities]
        print(f"{'untrained' if label == 'before' else 'trained':12}{cells[0]:>14}{cells[1]:>12}{cells[2]:>12}")
    m = result["after"]
    maes = [f"forces {m['forces']['mae']:.4f} eV/Å", f"energy {1000 * m['energy_per_atom']['mae']:.2f} meV/atom"]
    if "stress" in m:
        maes.append(f"stress {m['stress']['mae']:.5f} eV/Å³")
    print("trained MAE: " + ", ".join(maes))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--element", default="Ti", help="TM23 symbol (default Ti)")
    p.add_argument("--split", default="cold", help="standard split (default cold)")
    p.add_argument("--cutoff", type=float, default=5.0, help="graph cutoff in Å (default 5)")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--interactions", type=int, default=3)
    p.add_argument("--energy-weight", type=float, default=1.0, help="weight of the energy/atom loss (default 1)")
    p.add_argument("--force-weight", type=float, default=1.0, help="weight of the force loss (default 1)")
    p.add_argument("--stress-weight", type=float, default=1.0, help="weight of the stress x volume/atom loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50, help="show the loss on the progress bar every N steps (0: no bar)")
    p.add_argument("--synthetic", action="store_true",
                   help="make a small TM23-format archive (tm23data.generation.synthetic: EMT/Lennard-Jones labels) in a "
                   "temporary TM23_HOME and train on it; no download")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)")  # fmt: skip
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> dict:
    if not args.synthetic:
        result = train(args)
        report(result, args)
        return result
    from tm23data import config
    from tm23data.generation.synthetic import synthetic_archive

    with tempfile.TemporaryDirectory(prefix="tm23-example-") as tmp, config.settings(home=os.path.join(tmp, "home")):
        archive = os.path.join(tmp, "synthetic.zip")
        md5 = synthetic_archive(archive, [args.element], n_train=30, n_test=10, seed=args.seed)
        print(f"synthetic TM23-format archive of {args.element} (md5 {md5}) in {tmp}")
        result = train(args, archive=archive)  # a zip path: verified and imported on first use
    report(result, args)
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
