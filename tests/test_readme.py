"""The README's Python examples run as written, and its figures come from the JSON."""
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write data_cache/ and runs/
    blocks = python_blocks()
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "top-5 next items:" in out
    first_loss = float(re.search(r"loss after 30 steps: ([0-9.]+)", out).group(1))
    assert first_loss < 4.0  # ln(101) = 4.6 at chance
    assert namespace["batch"].num_graphs == 2
    assert (tmp_path / "runs" / "example" / "best.pt").is_file()
    assert "'Hit@20'" in out


def test_readme_results_are_generated_from_the_json(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("make_tables", ROOT / "benchmarks" /
                                                  "make_tables.py")
    make_tables = importlib.util.module_from_spec(spec)
    sys.modules.pop("make_tables", None)
    spec.loader.exec_module(make_tables)
    expected = make_tables.readme_section(ROOT / "benchmarks" / "results")
    text = README.read_text()
    start = text.index(make_tables.README_START)
    end = text.index(make_tables.README_END) + len(make_tables.README_END)
    assert text[start:end] == expected, "run: python benchmarks/make_tables.py --readme README.md"
