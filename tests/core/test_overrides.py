"""--set KEY=VALUE for every settings dataclass: values converted from the field types, lists settable and
clearable, unknown keys listed, and campaign files written by tm23data 0.1.0 still load."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tm23data import overrides
from tm23data.baselines.flare import FlareSettings
from tm23data.baselines.nequip import NequIPSettings
from tm23data.errors import UsageError
from tm23data.generation.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass
class Inner:
    depth: int = 2
    width: float = 1.5


@dataclass
class Outer:
    name: str = "x"
    count: int = 1
    rate: float | None = None
    flag: bool = False
    items: list[str] = field(default_factory=lambda: ["a"])
    pair: tuple[int, ...] = (1, 2)
    limit: str | float | None = None
    table: dict = field(default_factory=dict, metadata={"key": str.upper, "value": lambda v, k: int(v)})
    inner: Inner = field(default_factory=Inner)


def test_values_are_converted_from_the_field_types():
    o = overrides.apply(Outer(), {"count": "7", "rate": "1e-3", "flag": "yes", "items": "p, q", "pair": "3,4",
                                  "limit": "3600", "table.encut": "600", "inner.depth": "5", "inner.width": "2"})  # fmt: skip
    assert (o.count, o.rate, o.flag, o.items, o.pair, o.limit) == (7, 1e-3, True, ["p", "q"], (3, 4), 3600.0)
    assert o.table == {"ENCUT": 600} and o.inner == Inner(5, 2.0)
    assert overrides.apply(Outer(), {"limit": "01:00:00:00"}).limit == "01:00:00:00"
    assert overrides.apply(Outer(), {"items": '["x", "y"]'}).items == ["x", "y"]
    nested = overrides.apply(Outer(), {"inner": {"depth": 9}, "table": {"sigma": 2}})
    assert nested.inner.depth == 9 and nested.table == {"SIGMA": 2}


def test_lists_and_optionals_are_clearable_and_entries_unset():
    o = overrides.apply(Outer(), {"items": "", "rate": "", "table.A": "1"})
    assert o.items == [] and o.rate is None
    assert overrides.apply(o, {"table.a": ""}).table == {"A": None}  # unset, and stays unset in a saved copy
    assert overrides.apply(Outer(), {"items": None}).items == []


@pytest.mark.parametrize("change, message", [
    ({"count": "1e2"}, "'count' takes an integer, got '1e2'"),
    ({"count": "1.5"}, "takes an integer"),
    ({"count": True}, "takes an integer"),
    ({"rate": "fast"}, "'rate' takes a number"),
    ({"flag": "maybe"}, "takes true or false"),
    ({"pair": "1,x"}, r"pair\[1\]' takes an integer"),
    ({"cont": "1"}, "unknown setting 'cont'. Did you mean 'count'\\?"),
    ({"inner.deep": "1"}, "unknown setting 'inner.deep'.*Valid settings: inner.depth, inner.width"),
    ({"inner": "3"}, "'inner' is a section"),
    ({"count.x": "3"}, "takes a value, not sub-keys"),
    ({"table": "3"}, "NAME=VALUE entries"),
])  # fmt: skip
def test_mistakes_are_clear_errors(change, message):
    with pytest.raises(UsageError, match=message):
        overrides.apply(Outer(), change)


def test_assignments_are_parsed():
    assert overrides.parse_assignments(["a.b=1", "c-d= x=y", "e="]) == {"a.b": "1", "c_d": " x=y", "e": ""}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        overrides.parse_assignments(["novalue"])


def test_baselines_and_generation_use_it():
    assert NequIPSettings.from_dict({"validation": ".1", "num_features": "64", "max_epochs": ""}).validation == 0.1
    with pytest.raises(UsageError, match="num_features' takes an integer, got '1e2'"):
        NequIPSettings.from_dict({"num_features": "1e2"})
    with pytest.raises(UsageError, match="unknown FLARE settings: 'nmax'. Did you mean 'n_max'"):
        FlareSettings.from_dict({"nmax": 4})
    s = Settings().override({"slurm.extra_sbatch": "", "slurm.modules": "vasp/5.4.1,intel", "md.n_frames": "20"})
    assert s.slurm.extra_sbatch == [] and s.slurm.modules == ["vasp/5.4.1", "intel"] and s.md.n_frames == 20
    assert Settings().override({"slurm.extra_sbatch": "--constraint=cpu"}).slurm.extra_sbatch == ["--constraint=cpu"]
    # options keep their own commas: a new item starts only before "-"
    extra = Settings().override({"slurm.extra_sbatch": "--constraint=a,b, --gres=gpu:a100:2,-C x"}).slurm.extra_sbatch
    assert extra == ["--constraint=a,b", "--gres=gpu:a100:2", "-C x"]
    assert Settings().override({"slurm.extra_sbatch": '["--mail-type=END,FAIL"]'}).slurm.extra_sbatch == [
        "--mail-type=END,FAIL"]
    assert Settings.from_dict(json.loads(s.to_json())) == s


def test_a_campaign_written_by_0_1_0_still_loads(tmp_path):
    from tm23data.generation.slurm import Campaign, aimd_script

    root = tmp_path / "campaign"
    root.mkdir()
    shutil.copy(DATA / "campaign_written_by_0.1.0.json", root / "campaign.json")
    assert json.loads((root / "campaign.json").read_text())["settings"]["slurm"]["extra_sbatch"] is None  # the old bug
    campaign = Campaign.open(root)
    s = campaign.settings
    assert s.slurm.extra_sbatch == [] and s.slurm.account == "proj" and s.slurm.modules == ["vasp/5.4.1"]
    assert s.vasp.incar("static")["ENCUT"] == 600 and s.vasp.kpoints["Cu"] == [3, 3, 5]
    campaign.write_aimd_inputs(["Cu"], ["cold"])
    script = aimd_script(campaign, "Cu", "cold")
    assert "#SBATCH --account=proj" in script and "#SBATCH -\n" not in script
