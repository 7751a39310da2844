"""The README's examples are part of the API: every ```python block runs as written.

Blocks fenced ```py are illustrations that need data, downloads or minutes of training; they are
shown but not run here (their code paths have their own tests).
"""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_runnable_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})
