"""README promises: exactly two set-up commands, and CI runs the test one verbatim."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```bash\n")[1:]
    return [b.split("```", 1)[0].strip() for b in blocks]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    quickstart, tests = _setup_commands()
    assert "\n" not in quickstart and "\n" not in tests
    assert quickstart.endswith("lightning_qa fit --config configs/quickstart.yaml")
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()
