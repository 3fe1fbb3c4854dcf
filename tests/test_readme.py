"""README's library section: the names it uses exist, and its research pointer leads to the blocks
that tests/test_research.py runs."""

import contextlib
import importlib
import re
import types
from pathlib import Path

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
