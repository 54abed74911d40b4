"""The plugin contract: the core imports no plugin; plugins and templates use only the public API
(``asdcore.__all__`` and ``asdcore.PUBLIC_MODULES``, listed in docs/public-api.md) and no other plugin."""
import ast
import inspect
import re
from pathlib import Path

import pytest

import asdcore
from asdcore import hookspecs
from asdcore.registry import KINDS, SINGULAR

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_NAMES = set(asdcore.__all__)
PUBLIC_MODULES = set(asdcore.PUBLIC_MODULES)
PLUGIN_PACKAGE = re.compile(r"asd_\w+")
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")


def plugin_packages() -> list[Path]:
    return sorted(p.parent for p in ROOT.glob("plugins/*/asd_*/__init__.py"))


def python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import; ``import a.b`` gives ("a.b", [])."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def asdcore_attributes(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every ``asdcore.<name>``."""
    return [(node.lineno, node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "asdcore"]


def public(name: str) -> bool:
    """Whether ``asdcore.<name>`` is a public name or module."""
    return name in PUBLIC_NAMES or f"asdcore.{name}" in PUBLIC_MODULES


def contract_violations(imported: list[tuple[int, str, list[str]]], attributes: list[tuple[int, str]],
                        own: str) -> list[str]:
    """Private asdcore modules or names, and plugin packages other than ``own``, that the code uses."""
    problems = []
    for line, module, names in imported:
        top = module.split(".")[0]
        if top == "asdcore":
            if module != "asdcore" and module not in PUBLIC_MODULES:
                problems.append(f"line {line}: {module} is a private module")
            elif module == "asdcore":
                problems += [f"line {line}: asdcore.{name} is not public" for name in names if not public(name)]
        elif PLUGIN_PACKAGE.fullmatch(top) and top != own:
            problems.append(f"line {line}: imports the plugin package {top}")
    problems += [f"line {line}: asdcore.{name} is not public" for line, name in attributes if not public(name)]
    return problems


def template_code(path: Path) -> tuple[list[tuple[int, str, list[str]]], list[tuple[int, str]]]:
    """Imports and ``asdcore.<name>`` uses of a template file, its jinja parts left out (unrendered)."""
    lines = path.read_text().splitlines()
    imported, attributes, index = [], [], 0
    while index < len(lines):
        start, text = index, lines[index]
        if re.match(r"\s*(import|from)\s", text):
            while text.count("(") > text.count(")") and index + 1 < len(lines):
                index += 1
                text += "\n" + lines[index]
            try:
                tree = ast.parse(text.strip())
            except SyntaxError:  # jinja in the import, or prose that starts with "from"
                tree = ast.Module(body=[], type_ignores=[])
            imported += [(start + line, module, names) for line, module, names in imports(tree)]
        else:
            attributes += [(start + 1, name) for name in re.findall(r"\basdcore\.(\w+)", JINJA.sub("", text))]
        index += 1
    return imported, attributes


def test_the_core_imports_no_plugin_package():
    problems = [f"{path.relative_to(ROOT)}: line {line}: imports {module}"
                for path in python_files(ROOT / "asdcore")
                for line, module, _ in imports(ast.parse(path.read_text()))
                if PLUGIN_PACKAGE.fullmatch(module.split(".")[0])]
    assert not problems, "the core must not import plugins:\n" + "\n".join(problems)


def test_plugin_packages_use_only_the_public_api_and_no_other_plugin():
    packages = plugin_packages()
    assert {p.name for p in packages} >= {"asd_backends", "asd_datasets", "asd_executors", "asd_frontends"}
    problems = []
    for package in packages:
        for path in python_files(package):
            tree = ast.parse(path.read_text())
            problems += [f"{path.relative_to(ROOT)}: {problem}"
                         for problem in contract_violations(imports(tree), asdcore_attributes(tree), package.name)]
    assert not problems, "plugins may use only docs/public-api.md:\n" + "\n".join(problems)


def test_templates_use_only_the_public_api():
    files = [path for template in sorted((ROOT / "templates").iterdir()) for path in python_files(template)]
    assert any(path.name == "plugin.py" for path in files)
    problems = []
    for path in files:
        imported, attributes = template_code(path)
        problems += [f"{path.relative_to(ROOT)}: {problem}"
                     for problem in contract_violations(imported, attributes, own="")]
    assert not problems, "templates may use only docs/public-api.md:\n" + "\n".join(problems)


def test_the_checks_catch_private_modules_names_and_other_plugins(tmp_path):
    tree = ast.parse("import asdcore\nimport asdcore.training\nfrom asdcore import Backend, KINDS\n"
                     "from asdcore.testing import check_backend\nfrom asd_frontends import losses\n"
                     "from asd_backends.knn import KnnBackend\nasdcore.scoring.SectionScorer\nasdcore.Backend\n")
    assert contract_violations(imports(tree), asdcore_attributes(tree), "asd_backends") == [
        "line 2: asdcore.training is a private module", "line 3: asdcore.KINDS is not public",
        "line 5: imports the plugin package asd_frontends", "line 7: asdcore.scoring is not public"]
    template = tmp_path / "plugin.py"
    template.write_text("from {{ cookiecutter.package_name }}.x import {{ cookiecutter.class_name }}\n"
                        "from asdcore import (\n    Backend,\n    registry,\n)\n"
                        "class {{ cookiecutter.class_name }}(asdcore.training.TorchFrontend):\n    pass\n")
    assert contract_violations(*template_code(template), own="") == [
        "line 2: asdcore.registry is not public", "line 6: asdcore.training is not public"]


def test_public_api_doc_lists_exactly_the_public_names_and_modules():
    text = (ROOT / "docs" / "public-api.md").read_text()
    listed = re.findall(r"^- `([\w.]+)`", text, flags=re.MULTILINE)
    assert len(listed) == len(set(listed)), "a name is listed twice"
    assert set(listed) == PUBLIC_NAMES | PUBLIC_MODULES
    assert "every other module is private: it may change without notice" in " ".join(text.lower().split())


def test_every_public_name_resolves():
    for name in asdcore.__all__:
        assert getattr(asdcore, name) is not None, name
    assert asdcore.testing.check_backend is not None
    with pytest.raises(AttributeError, match="'asdcore' has no attribute 'training_loop'"):
        asdcore.training_loop  # noqa: B018


def test_context_keywords_are_the_base_classes_keyword_only_arguments():
    for kind, (_, base) in KINDS.items():
        keyword_only = [p.name for p in inspect.signature(base.__init__).parameters.values()
                        if p.kind is p.KEYWORD_ONLY]
        assert tuple(keyword_only) == asdcore.CONTEXT_KEYWORDS.get(kind, ()), kind


def test_hookspecs_and_guide_document_every_kind():
    guide = (ROOT / "docs" / "write-a-plugin.md").read_text()
    for kind, (hook, base) in KINDS.items():
        doc = getattr(hookspecs, hook).__doc__
        for needed in (f'register("my_{SINGULAR[kind]}"', f"asdcore.{base.__name__}", "Constructor: ``cls(params",
                       f"asdcore.testing.check_{SINGULAR[kind]}"):
            assert needed in doc, f"{hook}: {needed}"
        assert f"check_{SINGULAR[kind]}" in guide and f"`{hook}(register)`" in guide, kind
    assert "cli.add_command" in hookspecs.register_commands.__doc__
