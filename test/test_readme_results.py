"""README.md's results table is generated from the benchmarks' JSON (bench/results.py): it cannot drift from what
the benchmarks measured, and every row names the command that reproduces it."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

from results import BEGIN, END, RESULTS, table, with_table  # noqa: E402


def test_readme_table_is_the_generated_one():
    run = subprocess.run([sys.executable, str(ROOT / 'bench' / 'results.py'), '--check'], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr


def test_every_result_names_a_benchmark_that_exists_and_when_and_where_it_ran():
    documents = [json.loads(p.read_text()) for p in sorted(RESULTS.glob('*.json'))]
    assert documents, 'no benchmark results recorded'
    for d in documents:
        script = d['command'].split()[1]
        assert d['command'].startswith('.venv/bin/python bench/') and (ROOT / script).is_file(), d['command']
        assert d['metric'] and d['result'] and d['target'] and d['machine'] and len(d['date']) == 10, d
    assert len({d['order'] for d in documents}) == len(documents), 'two rows share a place in the table'


def test_the_table_replaces_only_the_text_between_the_markers():
    readme = f'# title\n\nintro\n{BEGIN}\nstale table\n{END}\n\nafter\n'
    updated = with_table(readme, table())
    assert updated.startswith('# title\n\nintro\n') and updated.endswith(f'{END}\n\nafter\n')
    assert 'stale table' not in updated and table() in updated
