"""The README's Python examples run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run(capsys):
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "top-5 next items:" in out
    first_loss = float(re.search(r"loss after 30 steps: ([0-9.]+)", out).group(1))
    assert first_loss < 4.0  # ln(101) = 4.6 at chance
    assert namespace["batch"].num_graphs == 2
