"""Seeded attacks on the data layer, reporting cases tried and survived (README "Reliability").

A case survives when the data layer either serves exactly the right data or refuses with a tm23data error
(never a bare exception, a wrong answer, or a file outside the cache). Attacks: downloads dropped at a random
byte and resumed; a build SIGKILLed at a random moment, then rebuilt; random byte flips in a cached store;
fuzzed extxyz (byte flips, truncation, line swaps) compared with ase.io.read; hostile zips (duplicate,
climbing, encrypted, unsupported members).

    python benchmarks/attack_data_layer.py --cases 40 --seed 0
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from http_server import ArchiveServer  # noqa: E402

from tm23data import config  # noqa: E402
from tm23data.archive import Archive  # noqa: E402
from tm23data.errors import TM23Error  # noqa: E402
from tm23data.extxyz import format_extxyz, parse_extxyz  # noqa: E402
from tm23data.fetch import RetryPolicy, fetch_archive, import_archive  # noqa: E402
from tm23data.generation.synthetic import synthetic_archive, synthetic_frames  # noqa: E402
from tm23data.store import load_store, store_path  # noqa: E402


def downloads(rng, n, zip_path, md5):
    ok = 0
    data = zip_path.read_bytes()
    for _ in range(n):
        srv = ArchiveServer(data, script=[rng.choice(["drop", "500", "wrong-range", "ignore-range"])
                                          for _ in range(rng.randint(1, 3))])  # fmt: skip
        try:
            with tempfile.TemporaryDirectory() as home, config.settings(home=home):
                path = fetch_archive(config.archive_source(md5=md5, urls=[srv.url()]), progress=False,
                                     retry=RetryPolicy(attempts=5, backoff=0.01))  # fmt: skip
                ok += path.read_bytes() == data
        except TM23Error:
            ok += 1
        finally:
            srv.close()
    return ok


BUILD = "from tm23data.store import load_store; load_store('Cu', progress=False)"


def killed_builds(rng, n, zip_path, md5):
    ok = 0
    for _ in range(n):
        with tempfile.TemporaryDirectory() as home, config.settings(home=home):
            os.environ["TM23_MD5"] = md5
            import_archive(zip_path)
            proc = subprocess.Popen([sys.executable, "-c", BUILD], env=dict(os.environ))
            time.sleep(rng.uniform(0.2, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            store = load_store("Cu", progress=False)
            leftovers = [p for p in store_path("Cu").parent.iterdir() if ".tmp" in p.name]
            ok += len(store) > 0 and not leftovers
    os.environ.pop("TM23_MD5", None)
    return ok


def store_damage(rng, n, zip_path, md5):
    ok = 0
    with tempfile.TemporaryDirectory() as home, config.settings(home=home):
        os.environ["TM23_MD5"] = md5
        import_archive(zip_path)
        good = load_store("Cu", progress=False)
        for _ in range(n):
            raw = bytearray(good.path.read_bytes())
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            good.path.write_bytes(bytes(raw))
            try:
                again = load_store("Cu", progress=False)
                ok += again.content_hash == good.content_hash and np.array_equal(again.frames.forces, good.frames.forces)
            except TM23Error:
                ok += 1
    os.environ.pop("TM23_MD5", None)
    return ok


def fuzzed_extxyz(rng, n):
    import ase.io

    text = format_extxyz(synthetic_frames("Cu", "warm", 3, seed=1))
    ok = 0
    for _ in range(n):
        data = bytearray(text)
        how = rng.choice(["flip", "truncate", "swap"])
        if how == "flip":
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.choice(b"0123456789.-eE= \n\"'{}xT")
        elif how == "truncate":
            data = data[: rng.randrange(len(data))]
        else:
            lines = bytes(data).split(b"\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
        try:
            ours = parse_extxyz(bytes(data), source="fuzz")
        except TM23Error:
            ok += 1  # refused clearly (ASE may accept what is ambiguous; refusing is safe)
            continue
        except Exception:  # noqa: BLE001 - a bare crash is a failure
            continue
        try:
            ref = ase.io.read(io.StringIO(bytes(data).decode()), index=":", format="extxyz")
        except Exception:  # noqa: BLE001
            continue  # we accepted what ASE refuses: counted as not survived
        same = len(ref) == len(ours) and all(
            np.array_equal(a.positions, ours.positions[ours.offsets[i]:ours.offsets[i + 1]])
            and np.array_equal(a.numbers, ours.numbers[ours.offsets[i]:ours.offsets[i + 1]]) for i, a in enumerate(ref))
        ok += same
    return ok


def hostile_zips(rng, n, tmp):
    ok = 0
    kinds = ["duplicate", "climb", "absolute", "encrypted", "ppmd", "garbage"]
    for k in range(n):
        path = Path(tmp) / f"h{k}.zip"
        kind = kinds[k % len(kinds)]
        name = "benchmarking_master_collection/Cu_cold_nequip_train.xyz"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with zipfile.ZipFile(path, "w") as zf:
                if kind == "duplicate":
                    zf.writestr(name, "a")
                    zf.writestr(name, "b")
                elif kind == "climb":
                    zf.writestr("../" * rng.randint(1, 5) + "x.xyz", "a")
                elif kind == "absolute":
                    zf.writestr("/etc/x.xyz", "a")
                else:
                    zf.writestr(name, "2\n\n")
        if kind in ("encrypted", "ppmd"):
            raw = bytearray(path.read_bytes())
            for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
                at = raw.index(sig)
                if kind == "encrypted":
                    raw[at + flag_at] |= 1
                else:
                    raw[at + method_at : at + method_at + 2] = (98).to_bytes(2, "little")
            path.write_bytes(bytes(raw))
        elif kind == "garbage":
            path.write_bytes(bytes(rng.randrange(256) for _ in range(200)))
        try:
            with Archive(path) as archive:
                archive.read(name)
                archive.extract("Cu", Path(tmp) / "out")
        except TM23Error:
            ok += 1
    return ok


def main() -> None:
    import logging

    logging.disable(logging.WARNING)  # the rebuilds and retries being provoked are expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40, help="cases per attack (fuzzed extxyz: 10x)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "benchmarking_master_collection-20240316T202423Z-001.zip"
        md5 = synthetic_archive(zip_path, ["Cu"], 9, 3, seed=0)
        n = args.cases
        rows = [
            ("dropped/resumed downloads", n, lambda: downloads(rng, n, zip_path, md5)),
            ("SIGKILL during a store build", max(1, n // 8), lambda: killed_builds(rng, max(1, n // 8), zip_path, md5)),
            ("byte flips in a cached store", n, lambda: store_damage(rng, n, zip_path, md5)),
            ("fuzzed extxyz vs ase.io.read", 10 * n, lambda: fuzzed_extxyz(rng, 10 * n)),
            ("hostile zips", n, lambda: hostile_zips(rng, n, tmp)),
        ]
        total = survived = 0
        print(f"{'attack':32s} {'tried':>6s} {'survived':>9s}")
        for name, tried, run in rows:
            start = time.perf_counter()
            got = run()
            total, survived = total + tried, survived + got
            print(f"{name:32s} {tried:6d} {got:9d}   ({time.perf_counter() - start:.1f} s)")
        print(f"{'total':32s} {total:6d} {survived:9d}   (seed {args.seed})")


if __name__ == "__main__":
    main()
