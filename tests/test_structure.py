"""The layout the code promises (docs/layout.md): programs are thin entry points over library modules, no
program imports another, the library's import graph has no cycle, installing puts no module in site-packages, the
lint configuration passes, and nothing cites a document outside the repository."""
import ast
import os
import re
import subprocess
import sys
import tomllib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def top_level_modules():
    return sorted(name[:-3] for name in os.listdir(REPO) if name.endswith('.py'))


def source(module):
    with open(os.path.join(REPO, f'{module}.py'), encoding='utf-8') as f:
        return f.read()


def is_program(module):
    """A program runs as `python3 <module>.py`: it has a module-level `if __name__ == '__main__':` block."""
    return any(isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
               for node in ast.parse(source(module)).body)


def local_imports(module, modules):
    """The repository's modules that `module` imports, anywhere in its body (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(source(module))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split('.')[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split('.')[0])
    return found & set(modules)


@pytest.fixture(scope='module')
def graph():
    modules = top_level_modules()
    return {module: local_imports(module, modules) for module in modules}


def test_no_program_is_imported(graph):
    """Every module imports library modules only: a program's reusable part lives in a library module."""
    programs = {module for module in graph if is_program(module)}
    assert {'train', 'sample', 'retrieval', 'visualization', 'seq2png', 'classifier'} <= programs
    offenders = {module: sorted(imports & programs) for module, imports in graph.items() if imports & programs}
    assert offenders == {}


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search with an explicit path)."""
    state = {}

    def visit(module, path):
        state[module] = 'open'
        for imported in sorted(graph[module]):
            if state.get(imported) == 'open':
                return path[path.index(imported):] + [imported]
            if imported not in state:
                cycle = visit(imported, path + [imported])
                if cycle:
                    return cycle
        state[module] = 'done'
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_the_import_graph_has_no_cycle(graph):
    assert find_cycle(graph) is None


def documented_graph():
    """{module: (imports named, imports that may be missing)} from the import graph in docs/layout.md: a
    parenthesised name is optional ('(, utils)': only some of the line's modules import it), and every program
    imports `program` besides."""
    with open(os.path.join(REPO, 'docs', 'layout.md'), encoding='utf-8') as f:
        block = f.read().split('```\nprograms')[1].split('```')[0]
    documented = {}
    for line in block.splitlines():
        if '->' not in line:
            continue
        names, imports = (part.strip() for part in line.split('->'))
        optional = set(re.findall(r'\w+', ' '.join(re.findall(r'\(([^)]*)\)', imports))))
        required = set(re.findall(r'\w+', re.sub(r'\([^)]*\)', '', imports)))
        for name in names.split(', '):
            documented[name] = (required, optional | ({'program'} if is_program(name) else set()))
    return documented


def test_the_documented_import_graph_is_the_code(graph):
    documented = documented_graph()
    assert sorted(documented) == sorted(graph)
    wrong = {module: sorted(imports) for module, imports in graph.items()
             if not documented[module][0] <= imports <= documented[module][0] | documented[module][1]}
    assert wrong == {}


def test_models_do_not_know_the_registry(graph):
    """family.py maps model_type to classes; the model modules below it never import it."""
    assert all('family' not in graph[module] for module in graph if module.startswith('model'))


def test_installing_adds_no_module_to_site_packages():
    """`pip install .` installs the dependencies only: none of the generic module names (utils, model, dataset ...)
    may shadow another package's (docs/install.md#installing-as-a-package). Both lists empty also turn off
    setuptools' automatic discovery, which would otherwise pick the flat modules up."""
    with open(os.path.join(REPO, 'pyproject.toml'), 'rb') as f:
        setuptools = tomllib.load(f)['tool']['setuptools']
    assert setuptools['py-modules'] == [] and setuptools['packages'] == []


def test_lint_configuration_passes():
    """ruff with the committed configuration (pyproject.toml [tool.ruff])."""
    proc = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '.'], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def tracked_text_files():
    names = subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [name for name in names if name.endswith(('.py', '.md', '.sh', '.txt', '.toml', '.cff'))
            or name.startswith('.ci/')]


@pytest.mark.skipif(not os.path.isdir(os.path.join(REPO, '.git')), reason='needs the git checkout')
def test_no_citation_of_a_document_outside_the_repository():
    """Code, tests and docs cite docs/model.md and docs/quirks.md, never a private specification."""
    pattern = re.compile(r'\b' + ''.join(['S', 'P', 'E', 'C']) + r'\b')   # spelled out: this file has no citation
    offenders = []
    for name in tracked_text_files():
        with open(os.path.join(REPO, name), encoding='utf-8') as f:
            offenders += [f'{name}:{i}' for i, line in enumerate(f, 1) if pattern.search(line)]
    assert offenders == []


def test_the_name_lists_agree():
    """The hparam choices name exactly the registered model types and recurrent cells (docs/model_interface.md)."""
    import family
    import hyperparams
    import rnn
    choices = hyperparams.CHOICES
    assert set(choices['model_type']) == set(family.MODEL_TYPES)
    assert set(choices['dec_model']) == set(choices['enc_model']) == set(rnn.CELLS)
