"""The tm23 command with users' mistakes: each ends with one line naming what to fix, never a traceback; every
option has a help text, no help shows a literal %%, every example in a help text parses; global options
work after the subcommand too."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys

import pytest

from tm23data.cli import _leaf_parsers, build_parser, main


def _run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


MISTAKES = [
    (["info", "Xx"], "not a TM23 element"),
    (["splits", "Cu", "--split", "fulll"], "unknown split 'fulll'"),
    (["splits", "Cu", "--validation", "1.5"], "--validation must be a fraction"),
    (["export", "Cu", "{tmp}/out", "--split", "fulll"], "unknown split"),
    (["export", "Cu", "{tmp}/a_file"], "is not a folder"),
    (["export", "Cu,Cx", "{tmp}/out"], "'Cx' is not a TM23 element"),
    (["import", "{tmp}/missing.zip"], "no such file"),
    (["import", "{tmp}/a_file", "--md5", "xyz"], "32 hexadecimal"),
    (["baseline", "nequip", "Cu", "--set", "validation=abc", "--config-only", "{tmp}/c.yaml"], "'validation' takes a number"),
    (["baseline", "nequip", "Cu", "--set", "num_features=1e2", "--config-only", "{tmp}/c.yaml"], "takes an integer"),
    (["baseline", "flare", "Cu", "--set", "nmax=4"], "unknown FLARE settings: 'nmax'"),
    (["vasp-inputs", "{tmp}/camp", "Cu", "--stage", "aimd", "--set", "md.n_frames=many"], "takes an integer"),
    (["vasp-inputs", "{tmp}/camp", "Cu", "--stage", "aimd", "--set", "slurm.acount=x"], "Did you mean 'slurm.account'"),
    (["slurm", "status", "{tmp}/nowhere"], "no campaign.json"),
    (["collect", "{tmp}/nowhere", "{tmp}/x.zip"], "no campaign.json"),
    (["generate", "Ti", "--calculator", "emt", "{tmp}/gen"], "EMT has parameters only for"),
    (["stats", "Cu", "--offline"], "--offline was given"),
    (["rdf", "Cx"], "not a TM23 element"),
]  # fmt: skip


@pytest.mark.parametrize("argv, message", MISTAKES, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(MISTAKES)])
def test_a_mistake_is_one_line_naming_the_fix(argv, message, tm23_home, tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a zip\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = _run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("\r")]
    assert code == 1 and "Traceback" not in err, err
    assert lines[-1].startswith(f"tm23 {argv[0]}: error: ") and message in lines[-1], err


def test_usage_errors_are_argparse_messages(capsys):
    code, _, err = _run(capsys, "export", "Cu", "out", "--format", "xyz")
    assert code == 2 and "invalid choice: 'xyz'" in err and "Traceback" not in err


def test_no_traceback_from_the_installed_command(tm23_home):
    proc = subprocess.run([sys.executable, "-m", "tm23data.cli", "splits", "Cu", "--split", "nope"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.startswith("tm23 splits: error: unknown split 'nope'")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _parsers():
    parser = build_parser()
    return [parser, *_leaf_parsers(parser)]


def test_every_option_has_a_help_text():
    missing = []
    for p in _parsers():
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(f"{p.prog}: {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_help_texts_show_no_doubled_percent_and_their_examples_parse():
    examples = []
    for p in _parsers():
        assert "%%" not in p.format_help(), p.prog
        text = " ".join(f"{p.description or ''} {p.epilog or ''}".split())
        examples += [(p.prog, m.rstrip(".")) for m in re.findall(r"Example: (tm23 .+?)(?:; |$)", text)]
    assert len(examples) >= 2
    for prog, example in examples:
        words = shlex.split(example)[1:]
        assert prog.split()[1:2] == words[:1], f"{prog} shows an example of another command: {example}"
        build_parser().parse_args(words)  # SystemExit (a bad example) fails the test


def test_global_options_work_after_the_subcommand(cached, tmp_path, capsys):
    code, out, _ = _run(capsys, "stats", "Cu", "--offline")
    assert code == 0 and "cold" in out
    code, _, err = _run(capsys, "stats", "Cu", "--home", str(tmp_path / "empty"), "--offline")
    assert code == 1 and str(tmp_path / "empty") in err and "--offline was given" in err
    code, _, err = _run(capsys, "--home", str(tmp_path / "empty"), "stats", "Cu", "--offline")
    assert code == 1 and str(tmp_path / "empty") in err
    with pytest.raises(ValueError):  # -v after the subcommand shows the traceback
        main(["splits", "Cu", "--split", "nope", "-v"])
