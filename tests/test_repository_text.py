"""The code, configs, tools and tests explain themselves: no reference to design notes,
issue numbers or work sessions that a reader of the repository does not have."""
import os
import os.path as osp
import re

from tests.helpers.repo import REPO

PATTERN = re.compile(r'DESIGN\.md|seed note|design note \d|issue #\d|\(#\d+\)|\bsessions?\b(?! *=|\'|")', re.IGNORECASE)
DIRS = ('plugin', 'aqr_attention', 'tools', 'configs', 'projects', 'tests', 'docs')
PACKAGES = ('plugin', 'aqr_attention')   # what setup.py installs
SUFFIXES = ('.py', '.sh', '.md', '.cpp', '.txt', '.cfg', '.toml')
# pytest's fixture scope and this file's own pattern are not about work sessions
ALLOWED = ("scope='session'", 'converted once per test session', 'PATTERN = re.compile')


def _files():
    for top in DIRS:
        for root, _, names in os.walk(osp.join(REPO, top)):
            if '__pycache__' in root:
                continue
            for name in names:
                if name.endswith(SUFFIXES):
                    yield osp.join(root, name)
    yield from (osp.join(REPO, f) for f in ('README.md', 'setup.py'))


def test_no_references_outside_the_repository():
    hits = []
    for path in _files():
        if path == osp.abspath(__file__):
            continue
        with open(path, encoding='utf-8', errors='ignore') as f:
            for i, line in enumerate(f, 1):
                if PATTERN.search(line) and not any(a in line for a in ALLOWED):
                    hits.append(f'{osp.relpath(path, REPO)}:{i}: {line.strip()[:100]}')
    assert not hits, 'references to design notes, issues or sessions:\n' + '\n'.join(hits)


def test_every_package_directory_is_a_package():
    """find_packages (setup.py) only installs directories with an __init__.py."""
    missing = []
    for root, _, names in (w for top in PACKAGES for w in os.walk(osp.join(REPO, top))):
        if '__pycache__' not in root and any(n.endswith('.py') for n in names) and '__init__.py' not in names:
            missing.append(osp.relpath(root, REPO))
    assert not missing, f'directories without __init__.py: {missing}'
    assert osp.isfile(osp.join(REPO, 'LICENSE'))


def test_the_tests_mirror_the_sources():
    """tests/models/aqr/ holds the tests of plugin/models/aqr/, tests/aqr_attention/ those of
    aqr_attention/, tests/tools/ those of tools/, tests/configs/ and tests/projects/ those of
    configs/ and projects/; shared helpers are in tests/helpers/."""
    stray = []
    for root, _, names in os.walk(osp.join(REPO, 'tests')):
        rel = osp.relpath(root, osp.join(REPO, 'tests'))
        if rel == '.' or '__pycache__' in rel or rel.split(os.sep)[0] == 'helpers':
            continue
        sources = [osp.join(REPO, 'plugin', rel)] + [osp.join(REPO, rel) for top in ('tools', 'configs', 'projects')
                                                      if rel.split(os.sep)[0] == top]
        sources += [osp.join(REPO, rel)] if rel.split(os.sep)[0] == 'aqr_attention' else []
        if not any(osp.isdir(s) for s in sources):
            stray.append(rel)
        stray += [osp.join(rel, n) for n in names if n.endswith('.py') and not n.startswith(('test_', '__init__', 'conftest'))]
    assert not stray, f'test directories or modules with no source counterpart: {stray}'


def test_documentation_links_resolve():
    """Every relative link of the README and of docs/ points at a file that exists."""
    pages = [osp.join(REPO, 'README.md')]
    for root, _, names in os.walk(osp.join(REPO, 'docs')):
        pages += [osp.join(root, n) for n in names if n.endswith('.md')]
    broken = []
    for page in pages:
        with open(page, encoding='utf-8') as f:
            for target in re.findall(r'\]\(([^)#\s]+)', f.read()):
                if '://' not in target and not osp.exists(osp.join(osp.dirname(page), target)):
                    broken.append(f'{osp.relpath(page, REPO)} -> {target}')
    assert not broken, broken


def test_readme_starts_with_the_two_commands_and_stays_short():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert lines[:4] == ['```bash', 'bash tools/demo.sh        # set-up + generate nuScenes-format data + convert + '
                         'train CMT + test (mAP/NDS) + pictures',
                         'bash tools/run_tests.sh   # set-up + the CPU test suite (pytest)', '```']
    assert len(lines) <= 150


def test_the_code_map_names_every_source_file():
    """docs/code_map.md names every module of the installed packages and every tool by
    its path, so a newcomer finds the file of any concept there."""
    with open(osp.join(REPO, 'docs', 'code_map.md'), encoding='utf-8') as f:
        text = f.read()
    missing = []
    for top in PACKAGES + ('tools', 'projects'):
        for root, _, names in os.walk(osp.join(REPO, top)):
            for name in names:
                if name.endswith(('.py', '.sh')) and name != '__init__.py' and '__pycache__' not in root:
                    path = osp.relpath(osp.join(root, name), REPO)
                    if f'`{path}`' not in text:
                        missing.append(path)
    assert not missing, 'docs/code_map.md does not name: ' + ', '.join(sorted(missing))


def test_a_non_editable_install_imports_every_subpackage(tmp_path):
    """`pip install .` (not editable) of a copy of the sources, then every subpackage and
    the compiled kernel import from outside the repository."""
    import shutil
    import subprocess
    import sys
    src = tmp_path / 'src'
    for top in PACKAGES:
        shutil.copytree(osp.join(REPO, top), src / top, ignore=shutil.ignore_patterns('__pycache__', '*.so', '*.pyc'))
    for name in ('setup.py', 'pyproject.toml', 'LICENSE'):
        if osp.exists(osp.join(REPO, name)):
            shutil.copy(osp.join(REPO, name), src / name)
    site = tmp_path / 'site'
    res = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation',
                          '--target', str(site), str(src)], capture_output=True, text=True,
                         env=dict(os.environ, CMT_PORTABLE_KERNEL='1'))
    assert res.returncode == 0, res.stderr[-3000:]
    packages = sorted({osp.relpath(root, osp.join(REPO)).replace(os.sep, '.')
                       for top in PACKAGES for root, _, names in os.walk(osp.join(REPO, top))
                       if '__init__.py' in names and '__pycache__' not in root})
    code = ('import importlib, sys\n'
            f'for name in {packages!r}:\n'
            '    m = importlib.import_module(name)\n'
            f'    assert m.__file__.startswith({str(site)!r}), m.__file__\n'
            'from aqr_attention import window_attention_cpu\n'
            'assert window_attention_cpu.kernel_available(), window_attention_cpu.IMPORT_ERROR\n'
            'print("ok", len(sys.modules))\n')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['PYTHONPATH'] = str(site)
    res = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], cwd=str(tmp_path), capture_output=True,
                         text=True, env=env)
    assert res.stdout.startswith('ok'), res.stderr[-3000:]
