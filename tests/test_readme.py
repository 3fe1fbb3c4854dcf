"""README's research snippet runs as it stands (the API it shows exists and composes)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_research_snippet_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    snippet = next(b for b in blocks if "jax.jvp" in b and "LossWeights" in b)
    exec(compile(snippet, "README.md", "exec"), {})  # its asserts check jvp against grad
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("40 ") and "'style'" in out[-1]
