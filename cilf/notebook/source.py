"""Show the lines of ``cilf`` that implement an equation, inside a notebook (the Annotated-Transformer manner):
the code a reader sees is read from the installed package, so it cannot drift from what runs."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path


def _package_path(obj) -> str:
    """``cilf/model/fourier.py`` for an object defined in that module (the path from the package folder on)."""
    path = Path(inspect.getsourcefile(obj)).resolve()
    root = Path(__file__).resolve().parents[2]  # the folder holding the cilf package
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def source_text(*objects) -> str:
    """The source of each function, method or class, headed by ``# cilf/<path>: <qualified name>``, one blank
    line between them."""
    if not objects:
        raise ValueError("name at least one function, method or class")
    parts = []
    for obj in objects:
        fn = inspect.unwrap(obj)
        parts.append(f"# {_package_path(fn)}: {fn.__qualname__}\n{textwrap.dedent(inspect.getsource(fn)).rstrip()}")
    return "\n\n".join(parts) + "\n"


def show_source(*objects):
    """:func:`source_text` as a highlighted code display in Jupyter (the plain text elsewhere)."""
    text = source_text(*objects)
    try:
        from IPython.display import Code
    except ImportError:  # pragma: no cover - notebooks always have IPython
        return text
    return Code(text, language="python")
