"""Strip notebooks to their committed form: outputs stay, execution counts and noisy metadata go.

    python scripts/clean_notebooks.py                  # clean notebooks/*.ipynb in place
    python scripts/clean_notebooks.py --check          # exit 1 if any notebook is not clean
    python scripts/clean_notebooks.py path/to/x.ipynb  # just these

Kept: cell sources, outputs, cell ids, the `tags` of a cell (the `parameters` tag), the kernelspec
and the `language_info` the kernel writes (so JupyterLab opens the notebook unmodified). Execution counts
become 1, 2, ... on the code cells that have outputs (no empty `[ ]:` prompt beside an output, and the
same numbers on every run). Removed: timings and other cell metadata, saved widget state, and output
metadata that only records how it was produced. Run it after executing a notebook and before committing it.

nbval refuses cells that have outputs but no execution count, and compares only cells that were run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KEEP_CELL_METADATA = ("tags",)
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# What ipykernel writes as language_info (its version is the kernel's Python, kept as written).
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}


def clean_output(output: dict) -> dict:
    out = dict(output)
    if "execution_count" in out:
        out["execution_count"] = None
    if "metadata" in out:
        # Keep what changes how an output shows (an image's size); drop the rest.
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k.startswith("image/")}
    return out


def clean_cell(cell: dict) -> dict:
    cell = dict(cell)
    cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in KEEP_CELL_METADATA and v}
    if cell.get("cell_type") == "code":
        cell["outputs"] = [clean_output(o) for o in cell.get("outputs", [])]
    return cell


def clean(nb: dict) -> dict:
    """The notebook dict in committed form (a new dict; `nb` is left as it was)."""
    nb = dict(nb)
    nb["cells"] = [clean_cell(c) for c in nb.get("cells", [])]
    language = nb.get("metadata", {}).get("language_info") or {}
    nb["metadata"] = {"kernelspec": KERNELSPEC, "language_info": {**LANGUAGE_INFO, **language}}
    return numbered(nb)


def numbered(nb: dict) -> dict:
    """A copy with execution counts 1, 2, ... on the code cells that have outputs (None on the others)."""
    nb = dict(nb)
    cells, count = [], 0
    for cell in nb.get("cells", []):
        cell = dict(cell)
        if cell.get("cell_type") == "code" and cell.get("outputs"):
            count += 1
            cell["execution_count"] = count
            cell["outputs"] = [
                {**o, "execution_count": count} if o.get("output_type") == "execute_result" else o
                for o in cell["outputs"]
            ]
        elif cell.get("cell_type") == "code":
            cell["execution_count"] = None
        cells.append(cell)
    nb["cells"] = cells
    return nb


def dumps(nb: dict) -> str:
    """The notebook as Jupyter saves it (nbformat 4, validated), so opening and saving it changes nothing."""
    return nbformat.writes(nbformat.from_dict(nb), version=4) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not clean")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        cleaned = dumps(clean(nbformat.reads(text, as_version=4)))
        if cleaned == text:
            continue
        dirty.append(path)
        if not args.check:
            path.write_text(cleaned, encoding="utf-8")
    verb = "not clean" if args.check else "cleaned"
    for path in dirty:
        print(f"{verb}: {path}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
