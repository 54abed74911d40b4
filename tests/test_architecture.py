"""The plugin contract: the core imports no plugin; plugins, their tests and templates use only the public
API (``asdcore.__all__`` and ``asdcore.PUBLIC_MODULES``, listed in docs/public-api.md) and no other plugin;
a plugin's tests load only the core and the plugin; every distribution requires what it imports."""
import ast
import inspect
import os
import re
import subprocess
import sys
from importlib import metadata
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


def test_plugin_tests_use_only_the_public_api_and_their_own_plugin():
    problems = []
    for package in plugin_packages():
        files = python_files(package.parent / "tests")
        assert files, f"{package.parent.name} has no tests"
        for path in files:
            tree = ast.parse(path.read_text())
            problems += [f"{path.relative_to(ROOT)}: {problem}"
                         for problem in contract_violations(imports(tree), asdcore_attributes(tree), package.name)]
    assert not problems, "a plugin's tests may use only docs/public-api.md and the plugin:\n" + "\n".join(problems)


def entry_points(distribution: Path) -> list[str]:
    """The names in the ``[project.entry-points.asdcore]`` table of a distribution's pyproject.toml."""
    table = (distribution / "pyproject.toml").read_text().split("[project.entry-points.asdcore]\n")[1].split("\n[")[0]
    return re.findall(r"^(\w+)\s*=", table, flags=re.MULTILINE)


def only_plugins_fixtures(conftest: Path) -> list[list[str]]:
    """The arguments of ``only_plugins(...)`` in the autouse fixtures of ``conftest``."""
    found = []
    for node in ast.walk(ast.parse(conftest.read_text())):
        autouse = isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Call) and any(k.arg == "autouse" and getattr(k.value, "value", False) for k in d.keywords)
            for d in node.decorator_list)
        if autouse:
            found += [[a.value for a in call.args if isinstance(a, ast.Constant)] for call in ast.walk(node)
                      if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "only_plugins"]
    return found


@pytest.mark.parametrize("package", plugin_packages(), ids=lambda p: p.name)
def test_plugin_tests_load_only_the_core_and_their_plugin(package):
    """Every test of a plugin runs inside ``only_plugins(<its entry point>)``, also within the whole suite."""
    assert entry_points(package.parent) == [package.name]
    assert [package.name] in only_plugins_fixtures(package.parent / "tests" / "conftest.py")


def test_the_fixture_check_needs_autouse_and_the_own_plugin(tmp_path):
    conftest = tmp_path / "conftest.py"
    conftest.write_text("@pytest.fixture(autouse=True)\ndef a():\n    with only_plugins('asd_x'):\n        yield\n"
                        "@pytest.fixture\ndef b():\n    with only_plugins('asd_y'):\n        yield\n")
    assert only_plugins_fixtures(conftest) == [["asd_x"]]


BLOCKING_RUN = """
import sys
from importlib import metadata

import pytest


class OtherPlugins:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}}: only asdcore and {own} may be imported here")


sys.meta_path.insert(0, OtherPlugins())
sys.exit(pytest.main({arguments!r}))
"""


def test_a_plugins_tests_pass_with_the_other_plugins_unimportable():
    """``python -m pytest plugins/asd_backends/tests`` with ASDCORE_LOAD_PLUGINS naming it alone, every other
    plugin package made unimportable: all its tests pass (the other plugins' tests use the same fixture)."""
    own = "asd_backends"
    blocked = sorted(p.name for p in plugin_packages() if p.name != own)
    folder = f"plugins/{own}/tests"
    code = BLOCKING_RUN.format(blocked=blocked, own=own, arguments=[folder, "-q", "-p", "no:cacheprovider"])
    env = {**os.environ, "ASDCORE_LOAD_PLUGINS": f"{own},asdcore.testing"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in summary and not re.search(r"skipped|failed|error", summary), summary


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


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(distribution: str) -> set[str]:
    """The distributions ``distribution`` requires, extras included."""
    return {normalised(re.match(r"[\w.\-]+", r).group()) for r in metadata.requires(distribution) or []}


@pytest.mark.parametrize("package", [ROOT / "asdcore", *plugin_packages()], ids=lambda p: p.name)
def test_every_distribution_declares_what_it_imports(package):
    """Each third-party top-level module a package imports belongs to a distribution it requires."""
    provided = metadata.packages_distributions()
    modules = {module.split(".")[0] for path in python_files(package)
               for _, module, _ in imports(ast.parse(path.read_text()))}
    modules -= set(sys.stdlib_module_names) | {package.name}
    distribution = metadata.distribution(normalised(package.name)).metadata["Name"]
    declared = requirements(distribution)
    undeclared = {m: provided.get(m, [m]) for m in sorted(modules)
                  if not {normalised(d) for d in provided.get(m, [m])} & declared}
    assert not undeclared, f"{distribution} imports modules of distributions it does not require: {undeclared}"
