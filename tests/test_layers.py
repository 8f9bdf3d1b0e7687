"""The package's imports go one way: foundations → models → training and evaluation → recipes →
pipeline → front ends. Parsed with ``ast`` (nothing is imported), so the test also catches an
import hidden in a function body."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spokenstyle"

# layer of every module (a module not listed here fails the test: place it when you add it)
LAYERS: dict[str, int] = {
    # 0: foundations and pure mathematics
    "budgets": 0, "runtime": 0, "checkpoints": 0, "data": 0, "losses": 0, "theory": 0, "metrics": 0,
    "text_metrics": 0, "render": 0, "augment": 0,
    "fonts": 0,  # appendix B: a font with CJK glyphs for figures that show Chinese
    # 1: architectures and inference
    "models": 1, "stylization": 1,
    "interop": 1,  # appendix A: Keras port, OpenAI-compatible chat, pretrained hub models
    # 2: the training loop and the scorecards
    "train": 2, "evaluation": 2,
    # 3: what `spokenstyle train` runs
    "recipes": 3,
    # 4: the five steps in one call
    "pipeline": 4,
    "applications": 4,  # chapter 9: multimodal fusion, painter-style transfer, advert design (uses the pipeline)
    # 5: front ends
    "viz": 5, "widgets": 5, "cli": 5, "__main__": 5, "__init__": 5,
    "application_widgets": 5,  # chapter 9's Colab front ends
}

# imports that may stay inside a function body, each with the reason
ALLOWED_INNER: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    if key not in LAYERS:
        raise AssertionError(f"{module} has no layer in tests/test_layers.py LAYERS: place it")
    return LAYERS[key]


def imports(path: Path, module: str, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported package module, line, inside a function) for every import of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                full = ".".join(base + ([node.module] if node.module else []))
            else:
                full = node.module or ""
            targets = [f"{full}.{a.name}" if f"{full}.{a.name}" in known else full for a in node.names]
        for target in targets:
            if not target.startswith("spokenstyle"):
                continue
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            found.append((target, node.lineno, id(node) not in top and not _guarded(tree, node)))
    return found


def _guarded(tree: ast.Module, node: ast.AST) -> bool:
    """An import in a top-level ``if TYPE_CHECKING:`` block counts as a top-level import."""
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and any(node is n for n in ast.walk(stmt)):
            return True
    return False


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {t for t, _, _ in imports(p, m, known) if t != m} for m, p in mods.items()}


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


def test_no_module_imports_from_a_layer_above_its_own():
    mods = modules()
    known = set(mods)
    upward = []
    for module, path in mods.items():
        for target, line, _ in imports(path, module, known):
            if target == "spokenstyle" and module != "spokenstyle":
                upward.append(f"{path.name}:{line} imports the package root")
            elif layer_of(target) > layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)}) "
                              f"at line {line}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith(node + "."):  # a package importing its own submodules is not a cycle
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_package_import_hides_in_a_function_body():
    mods = modules()
    known = set(mods)
    hidden = [f"{module}:{line} imports {target}" for module, path in mods.items()
              for target, line, inner in imports(path, module, known)
              if inner and (module, target) not in ALLOWED_INNER]
    assert not hidden, "imports inside functions:\n" + "\n".join(hidden)


def test_no_third_party_import_hides_in_a_function_body():
    """Heavy optional dependencies may be imported late, with a comment saying why; none is now."""
    hidden = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top and not _guarded(tree, node):
                hidden.append(f"{module}:{node.lineno}")
    assert not hidden, "imports inside functions:\n" + "\n".join(hidden)


@pytest.mark.parametrize("source, expected", [
    ("from ..models import dcgan\n", "spokenstyle.models.dcgan"),
    ("from ..evaluation import evaluate_images\n", "spokenstyle.evaluation"),
    ("import spokenstyle.pipeline\n", "spokenstyle.pipeline"),
])
def test_the_parser_resolves_relative_imports(tmp_path, source, expected):
    """The checker itself: a relative import from a model file resolves to the right module."""
    fake = PACKAGE / "models" / "dcgan.py"
    path = tmp_path / "dcgan.py"
    path.write_text(source)
    found = imports(path, "spokenstyle.models.dcgan", set(modules()) | {"spokenstyle.models.dcgan"})
    assert found and found[0][0] == expected, (found, fake)


def test_the_checker_fails_on_an_upward_import(tmp_path):
    """A model that imports the pipeline is what the layering test must catch."""
    path = tmp_path / "bad.py"
    path.write_text("from ..pipeline import SpokenStylePipeline\n")
    (target, _, _), = imports(path, "spokenstyle.models.bad", set(modules()))
    assert layer_of(target) > layer_of("spokenstyle.models.bad")
