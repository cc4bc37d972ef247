"""The notebook series: committed in clean form, built on one skeleton, and run under nbval in smoke mode.

The clean-form checks read the files only. The nbval runs execute each notebook with
`pytest --nbval-lax` in a child process whose environment this test controls (GANLIB_SMOKE=1,
the demo data), so `make test` and a bare `pytest` both run them, and cells marked
`# NBVAL_CHECK_OUTPUT` are compared with the committed outputs of the full run. nbval needs
execution counts, which the committed form drops, so it runs on a numbered copy of the notebook.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganlib.data import DEMO_ROOT

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = [
    "01_data_exploration",
    "02_architecture",
    "03_training",
    "04_sample_inspection",
    "05_improving_the_gan",
    "06_synthetic_data_for_segmentation",
]
MAX_BYTES = 1_000_000
MAX_TEXT_LINES = 60  # of any one text output
NBVAL_TIMEOUT_S = 300


def load_cleaner():
    spec = importlib.util.spec_from_file_location("clean_notebooks", REPO / "scripts" / "clean_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(name: str) -> dict:
    return json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def text_of(output: dict) -> str:
    if output["output_type"] == "stream":
        value = output["text"]
    elif output["output_type"] == "error":
        value = "\n".join(output.get("traceback", []))
    else:
        value = output.get("data", {}).get("text/plain", "")
    return "".join(value) if isinstance(value, list) else value


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_series_is_complete():
    found = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_in_clean_form(name):
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size:,} bytes; keep it under 1 MB"
    nb = read(name)
    cleaner = load_cleaner()
    assert cleaner.dumps(cleaner.clean(nb)) == path.read_text(encoding="utf-8"), (
        f"{path.name} is not clean: run `python scripts/clean_notebooks.py` before committing"
    )
    assert set(nb["metadata"]) == {"kernelspec", "language_info"}
    # What the kernel writes, so JupyterLab opens the notebook without marking it modified.
    assert {"name", "version", "mimetype", "pygments_lexer"} <= set(nb["metadata"]["language_info"])
    count = 0
    for cell in nb["cells"]:
        assert set(cell.get("metadata", {})) <= {"tags"}, f"noisy cell metadata {cell['metadata']}"
        if cell["cell_type"] == "code":  # 1, 2, ... beside outputs: no empty [ ]: prompt next to a figure
            count += bool(cell["outputs"])
            assert cell["execution_count"] == (count if cell["outputs"] else None)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_outputs_are_from_a_real_run_and_short(name):
    nb = read(name)
    outputs = [o for c in code_cells(nb) for o in c["outputs"]]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figures: commit the outputs of a full run"
    assert all(code_cells(nb)[0]["outputs"]), "the Setup cell was not run"
    for o in outputs:
        assert o["output_type"] != "error", f"an error is committed: {text_of(o)[:300]}"
        text = text_of(o)
        assert len(text.splitlines()) <= MAX_TEXT_LINES, f"a text output of {len(text.splitlines())} lines"
        assert "smoke True" not in text, "outputs come from a smoke run; run the notebook without GANLIB_SMOKE"
        assert "/work/shared" not in text and "oasis/keras_png_slices_data" not in text.lower(), (
            "outputs mention the real OASIS data; commit outputs computed on the demo set only"
        )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_skeleton(name):
    nb = read(name)
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and source(cells[0]).startswith("# ")
    assert "**Goal:**" in source(cells[0])
    headings = [source(c).splitlines()[0] for c in cells if c["cell_type"] == "markdown" and source(c)]
    for heading in ("## Setup", "## Parameters", "## Summary"):
        assert heading in headings, f"missing the {heading!r} section"
    assert any("## Exercises" in source(c) for c in cells if c["cell_type"] == "markdown")
    setup = source(code_cells(nb)[0])
    assert "import ganlib" in setup and "torch.manual_seed" in setup and "torch.__version__" in setup
    assert "GANLIB_SMOKE" in setup


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_holds_literals(name):
    tagged = [c for c in code_cells(read(name)) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    for stmt in ast.parse(source(tagged[0])).body:
        assert isinstance(stmt, ast.Assign), f"only assignments in the parameters cell: {ast.unparse(stmt)}"
        ast.literal_eval(stmt.value)  # raises for anything but a literal


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_use_the_library(name):
    code = "\n".join(source(c) for c in code_cells(read(name)))
    tree = ast.parse("\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))))
    classes = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    assert not classes, f"notebooks define no classes (models live in ganlib): {classes}"
    for forbidden in (".backward(", "BCELoss", "binary_cross_entropy", "optim.Adam", "zero_grad"):
        assert forbidden not in code, f"{forbidden} belongs in ganlib, not in a notebook"
    assert "./" not in code and "../" not in code, "paths are resolved by the library (REPO_ROOT), not the cwd"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_deterministic_cells_are_checked(name):
    checked = [c for c in code_cells(read(name)) if source(c).startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "mark the cells with deterministic output `# NBVAL_CHECK_OUTPUT`"
    assert all(c["outputs"] for c in checked), "a checked cell has no committed output to compare with"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_nbval_smoke(name, tmp_path):
    """Run the notebook under nbval in smoke mode; checked cells must match the committed outputs."""
    env = {
        **os.environ,
        "GANLIB_SMOKE": "1",
        "GANLIB_DATA": str(DEMO_ROOT),  # the outputs nbval compares were computed on the demo set
        "GANLIB_CACHE": str(tmp_path / "cache"),
        # Tiny models gain nothing from threads, and on a busy machine OpenMP spinning makes them crawl.
        "OMP_NUM_THREADS": "1",
    }
    env.pop("MPLBACKEND", None)
    cleaner = load_cleaner()
    copy = tmp_path / f"{name}.ipynb"
    copy.write_text(cleaner.dumps(cleaner.numbered(read(name))), encoding="utf-8")
    cmd = [
        sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
        "-q", "-o", "addopts=", f"--rootdir={tmp_path}", str(copy),
    ]  # fmt: skip
    runs = REPO / "runs"
    runs_before = set(runs.iterdir()) if runs.is_dir() else set()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=NBVAL_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"nbval on {name} took over {NBVAL_TIMEOUT_S} s:\n{(e.stdout or '')[-3000:]}")
    finally:
        # Notebook 03 trains into <repo>/runs as a reader's run would; CI's smoke runs need not pile up there.
        for run in (set(runs.iterdir()) if runs.is_dir() else set()) - runs_before:
            if run.name.endswith("-smoke") and (run / "config.json").exists():
                shutil.rmtree(run, ignore_errors=True)
    assert proc.returncode == 0, f"nbval failed on {name}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_paths_of_the_machine_that_ran_them(name):
    """Committed outputs print paths relative to the repository, never the absolute paths of a machine."""
    import re

    found = []
    for cell in code_cells(read(name)):
        for output in cell.get("outputs", []):
            found += re.findall(r"(?<![\w.])/(?:home|root|work|tmp|Users|mnt|opt)/\S+", text_of(output))
    assert not found, found[:5]


@pytest.mark.parametrize(
    "checkpoint", ["auto", "pretrained", "cpu_demo", "oasis128_cpu", "ganlib/pretrained/cpu_demo.pt"]
)
def test_notebook_04_loads_every_kind_of_checkpoint_its_parameters_cell_offers(checkpoint):
    """The cell that loads notebook 04's generator, run as it is for each kind of `checkpoint` the parameters
    cell names: "auto" (the OASIS model with OASIS, else the demo model), a shipped name, "pretrained", and a
    path relative to the repository."""
    from ganlib.checkpoint import load_generator, resolve_checkpoint
    from ganlib.data import find_data_root

    (cell,) = [c for c in code_cells(read("04_sample_inspection")) if "load_generator(checkpoint" in source(c)]
    namespace = {"SMOKE": False, "REPO_ROOT": REPO, "os": os, "device": "cpu", "checkpoint": checkpoint,
                 "load_generator": load_generator, "resolve_checkpoint": resolve_checkpoint,
                 "find_data_root": find_data_root}
    exec(compile(source(cell), "04_sample_inspection.ipynb", "exec"), namespace)
    assert namespace["path"].parent == REPO / "ganlib" / "pretrained"
    assert namespace["config"].resolution == namespace["G"].resolution
