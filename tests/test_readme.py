"""The README against the code: the names of its library section exist, its research pointer leads to the blocks
that tests/test_research.py runs, every command, flag and path it names is the code's, and docs/web.md lists the
page's routes."""

import contextlib
import functools
import importlib.util
import io
import re
import shlex
import types
from pathlib import Path

import pytest

import jaxnst

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_jaxnst_name_in_the_readme_exists():
    names = set(re.findall(r"\bjaxnst((?:\.[A-Za-z_]\w*)+)", README))
    assert len(names) > 10
    for dotted in sorted(names):
        obj, path = jaxnst, "jaxnst"
        for part in dotted.strip(".").split("."):
            if part in ("py", "md", "json", "h5", "npz"):  # a file name
                break
            path += "." + part
            if not hasattr(obj, part) and isinstance(obj, types.ModuleType):
                with contextlib.suppress(ImportError):
                    importlib.import_module(path)  # a submodule not imported by ``import jaxnst``
            assert hasattr(obj, part), f"README names {path}, which does not exist"
            obj = getattr(obj, part)


def test_readme_points_to_the_research_blocks():
    assert "](docs/research.md)" in README and (ROOT / "docs" / "research.md").is_file()


# --- the README against the code: flags, commands and paths (a drift check) ---------------------------------------

# Flags of other programs that the README shows beside jaxnst's: pip's, Slurm's srun, XLA's.
FOREIGN_FLAGS = {"--no-deps", "--nodes", "--ntasks-per-node", "--xla_force_host_platform_device_count"}


@functools.cache
def help_flags(*command: str) -> frozenset[str]:
    """The options ``jaxnst COMMAND --help`` lists: what its parser takes."""
    from jaxnst.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*command, "--help"])
    return frozenset(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", out.getvalue()))


def readme_commands() -> list[list[str]]:
    """Every ``jaxnst ...`` command line of the README (its bash blocks, without comments, and its inline code), as
    the words after ``jaxnst``."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [re.sub(r"(^|\s)#.*", "", ln) for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", README, flags=re.S))
    found = [m[1] for ln in lines for m in re.finditer(r"(?<![\w./-])jaxnst\s+([^#&|;`]*)", ln)]
    return [[w.strip("[]") for w in shlex.split(c)] for c in found]


def test_every_command_and_flag_in_the_readme_is_the_parsers():
    from jaxnst.cli.common import SUBCOMMANDS

    commands = readme_commands()
    assert len(commands) > 30
    for words in commands:
        command = words[:1] if words[0] in SUBCOMMANDS else []
        if command == ["weights"]:
            assert words[1] in {"fetch", "convert", "info", "list"}, f"README: jaxnst weights {words[1]}"
            command = words[:2]
        elif not command and re.fullmatch(r"[a-z]+", words[0]):  # not a file, not a placeholder: a command
            raise AssertionError(f"README names `jaxnst {words[0]}`, which is no command of {sorted(SUBCOMMANDS)}")
        known = help_flags(*command)
        for w in words[len(command) :]:
            if w.startswith("-") and w != "-":
                flag = w.split("=")[0]
                assert flag in known, f"README: `jaxnst {' '.join(words)}`: no {flag} in jaxnst {' '.join(command)}"
    # A flag in the prose belongs to one of the commands, or to one of the scripts/ (their argparse flags).
    every = set(FOREIGN_FLAGS).union(*(help_flags(*c) for c in [[], *([s] for s in SUBCOMMANDS if s != "weights")]))
    every |= set().union(*(help_flags("weights", s) for s in ("fetch", "convert", "info", "list")))
    scripts = "".join(p.read_text() for p in (ROOT / "scripts").glob("*.py"))
    every |= set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", scripts))
    for flag in sorted(set(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", README))):
        assert flag in every, f"README names {flag}, which no jaxnst command or script takes"


def test_every_path_in_the_readme_exists():
    links = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", README) if not re.match(r"\w+:|#", t)]
    named = re.findall(r"`((?:docs|scripts|tests|jaxnst|weights|\.ci)/[^`\s]*)`", README)
    modules = set(re.findall(r"`(\w+\.py)`", README))
    assert len(links) > 20 and len(named) > 3 and len(modules) > 20
    for path in links + named:
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"
    folders = [ROOT / d for d in ("jaxnst", "jaxnst/cli", "jaxnst/web", "scripts", "tests")]
    for name in sorted(modules):
        assert any((d / name).is_file() for d in folders), f"README names {name}, which no folder holds"


def test_docs_web_md_lists_every_route_and_setting_of_the_page():
    pytest.importorskip("starlette")
    from jaxnst.web.app import make_app
    from jaxnst.web.runs import SETTINGS, SWEEPS

    text = (ROOT / "docs" / "web.md").read_text()
    app = make_app(None)  # {run_id} is the summary's "id"
    routes = {(method, r.path.replace("{run_id}", "{id}")) for r in app.routes for method in r.methods - {"HEAD"}}
    assert set(re.findall(r"^\| `(GET|POST) (/\S*)` \|", text, re.M)) == routes
    for name in (*SETTINGS, *SWEEPS):
        assert f"`{name}`" in text, f"docs/web.md does not name the page's setting {name}"
    assert "](docs/web.md)" in README


def test_the_gallery_script_says_what_is_missing_and_keeps_what_is_there(tmp_path, capsys):
    """Without ../shared/images: one line, no traceback; an --out holding the gallery is replaced only with
    --overwrite (before any weights are read or any image is painted)."""
    spec = importlib.util.spec_from_file_location("gallery", ROOT / "scripts" / "gallery.py")
    gallery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery)
    with pytest.raises(SystemExit) as e:
        gallery.main(["--images", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("gallery.py: error: tubingen.jpg, ") and err.count("\n") == 1, err
    assert "give --images" in err and not (tmp_path / "out").exists()
    for name in gallery.CONTENTS + gallery.STYLES:
        (tmp_path / name).touch()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "gallery.json").write_text("{}")
    with pytest.raises(SystemExit) as e:
        gallery.main(["--images", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "already holds gallery.json: add --overwrite" in err, err
    assert (tmp_path / "out" / "gallery.json").read_text() == "{}"
    assert "python scripts/gallery.py --out docs/gallery --overwrite" in README  # how to remake the README's
