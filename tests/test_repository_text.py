"""The code, configs, tools and tests explain themselves: no reference to design notes,
issue numbers or work sessions that a reader of the repository does not have."""
import os
import os.path as osp
import re

from conftest import REPO

PATTERN = re.compile(r'DESIGN\.md|seed note|issue #\d|\bsessions?\b(?! *=|\'|")', re.IGNORECASE)
DIRS = ('plugin', 'tools', 'configs', 'projects', 'tests', 'docs')
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
    for root, _, names in os.walk(osp.join(REPO, 'plugin')):
        if '__pycache__' not in root and any(n.endswith('.py') for n in names) and '__init__.py' not in names:
            missing.append(osp.relpath(root, REPO))
    assert not missing, f'directories without __init__.py: {missing}'
    assert osp.isfile(osp.join(REPO, 'LICENSE'))


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
    assert len(lines) <= 250
