"""The README's promises stay true: its commands and its example plugin match the code."""

from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def _first_commands() -> list[str]:
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_readme_starts_with_the_run_and_test_commands():
    run, test = _first_commands()[:2]
    assert run == "pip install -e . && python -m mubench run --methods all"
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    test = _first_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1].strip() == test


def test_readme_example_plugin_is_the_tested_file():
    example = (ROOT / "examples" / "plugin_example.py").read_text()
    assert example in README


def test_extending_shows_the_tested_attack_plugin():
    """docs/extending.md's attack example is examples/attack_example.py (run by test_attack_plugin.py)
    from its first import on."""
    example = (ROOT / "examples" / "attack_example.py").read_text()
    body = example.split('"""', 2)[2].strip()  # everything after the module docstring
    assert body in (ROOT / "docs" / "extending.md").read_text()
