"""The README's Python API section runs as written: every ```python block in it is executed (in order, one
namespace per block) and its own asserts hold. Blocks that only show a signature (``def fit_predict(...): ...``)
are executed too: defining a function is harmless."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_api_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_python_api_section_has_an_example_for_each_question():
    blocks = "\n".join(_python_api_blocks())
    assert "learnscope.bias" in blocks or "from learnscope.bias" in blocks
    assert "from learnscope import identify" in blocks


@pytest.mark.parametrize("index", range(len(_python_api_blocks())))
def test_readme_block_runs(index, tmp_path):
    code = _python_api_blocks()[index]
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def test_import_learnscope_is_light():
    """`import learnscope` (and reaching the two entry points) loads neither scikit-learn nor pandas."""
    code = ("import sys, learnscope\n"
            "heavy = [m for m in ('torch', 'sklearn', 'pandas') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "learnscope.bias.find_easiest\n"
            "assert 'sklearn' not in sys.modules and 'pandas' not in sys.modules\n"
            "learnscope.identify.simulate\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
