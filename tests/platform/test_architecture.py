"""The direction of dependencies, as ../shared/DESIGN.md draws it, checked on the code.

``dashboard -> agents -> tools -> platform core``: nothing imports what is above it, the
dashboard is imported by nobody (not even by a dotted path or a URL name), and there is
no import cycle, at module level or hidden inside a function. Only the composition root
(the top-level ``koe`` package: settings, URLs, ASGI, routing, the Celery app, the server)
names every app.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ("foundation", "tenancy", "calls", "billing", "audit", "events", "retention", "speech")
# The offline voice's stages stand alone: usable outside Koe, so no Django and no app.
STANDALONE = ("speech",)
FRAMEWORKS = ("django", "channels", "celery", "daphne", "ninja")
# koe is the composition root (settings, URLs, ASGI, routing, the Celery app, the server):
# it alone may import every app, and no app imports it.
LAYERS = {**dict.fromkeys(CORE, 0), "tools": 1, "agents": 2, "dashboard": 3, "koe": 4}
COMPOSITION_ROOT = ("koe",)


@cache
def graph() -> grimp.ImportGraph:
    # Every import counts, those inside functions included (cycles hide there); only
    # imports for type checkers do not run.
    return grimp.build_graph(*LAYERS, exclude_type_checking_imports=True, cache_dir=None)


def in_root(module: str) -> bool:
    return any(module == root or module.startswith(f"{root}.") for root in COMPOSITION_ROOT)


def layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def imports(product: grimp.ImportGraph) -> list[tuple[str, str]]:
    return [
        (importer, imported)
        for importer in sorted(product.modules)
        for imported in sorted(product.find_modules_directly_imported_by(importer))
    ]


def upward_imports(product: grimp.ImportGraph) -> list[str]:
    return [
        f"{importer} imports {imported}"
        for importer, imported in imports(product)
        if not in_root(importer) and layer(imported) > layer(importer)
    ]


def cycles(product: grimp.ImportGraph) -> list[str]:
    found = set()
    for importer, imported in imports(product):
        back = product.find_shortest_chain(importer=imported, imported=importer)
        if back:
            found.add(" -> ".join((importer, *back)))
    return sorted(found)


def test_nothing_imports_what_is_above_it() -> None:
    assert upward_imports(graph()) == []


def test_there_is_no_import_cycle() -> None:
    assert cycles(graph()) == []


@pytest.mark.parametrize("package", STANDALONE)
def test_a_standalone_package_imports_no_framework_and_no_app(package: str) -> None:
    alone = grimp.build_graph(
        package, include_external_packages=True, exclude_type_checking_imports=True, cache_dir=None
    )
    outside = {
        imported.split(".")[0]
        for module in alone.modules
        if module.split(".")[0] == package
        for imported in alone.find_modules_directly_imported_by(module)
    }
    assert alone.find_children(package)  # the package was read
    assert sorted(outside & {*FRAMEWORKS, *LAYERS} - {package}) == []


def test_the_graph_checks_find_what_they_look_for() -> None:
    planted = grimp.ImportGraph()
    planted.add_import(importer="billing.budgets", imported="billing.tasks")
    planted.add_import(importer="billing.tasks", imported="billing.budgets")
    planted.add_import(importer="calls.filters", imported="agents.models")
    planted.add_import(importer="koe.urls", imported="dashboard.urls")
    assert upward_imports(planted) == ["calls.filters imports agents.models"]
    assert cycles(planted) == [
        "billing.budgets -> billing.tasks -> billing.budgets",
        "billing.tasks -> billing.budgets -> billing.tasks",
    ]


def test_no_app_imports_the_composition_root() -> None:
    assert [
        f"{importer} imports {imported}"
        for importer, imported in imports(graph())
        if layer(imported) == LAYERS["koe"] and not in_root(importer)
    ] == []


def python_files_outside_the_dashboard() -> list[Path]:
    folders = [ROOT / "agents", ROOT / "tools", *(ROOT / "platform" / name for name in CORE)]
    return [
        path
        for folder in folders
        for path in sorted(folder.rglob("*.py"))
        if "migrations" not in path.parts
    ]


def module_of(path: Path) -> str:
    relative = path.relative_to(ROOT / "platform" if "platform" in path.parts else ROOT)
    return ".".join(relative.with_suffix("").parts)


def dashboard_names(source: str, where: str) -> list[str]:
    """Strings in ``source`` that name something of the dashboard: a module by dotted path
    (``import_string``, settings) or a page by URL name (``reverse``)."""
    return [
        f"{where}:{node.lineno}: {node.value!r}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (node.value == "dashboard" or node.value.startswith(("dashboard.", "dashboard:")))
    ]


def test_only_the_composition_root_names_the_dashboard() -> None:
    named = [
        name
        for path in python_files_outside_the_dashboard()
        if not in_root(module_of(path))
        for name in dashboard_names(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert named == []


@pytest.mark.parametrize(
    "source",
    [
        'CALL_FILTER_FORM = "dashboard.forms.calls.CallFilterForm"',
        'url = reverse("dashboard:invitation_accept", args=[token])',
    ],
)
def test_the_name_check_finds_what_it_looks_for(source: str) -> None:
    assert dashboard_names(source, "planted.py")
    assert not dashboard_names('template = "dashboard_help.html"', "planted.py")
