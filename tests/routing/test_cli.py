"""`ticketry rules export|apply`: rules kept in a YAML file in git, as people run it."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import cli_env, run_cli

RULES = """\
rules:
  - id: akut
    name: Akutte sager først
    when: {field: message.subject, op: words, value: [akut, brådskande]}
    actions:
      - {type: set_priority, priority: urgent}
"""


def test_apply_then_export_round_trips_and_a_second_apply_changes_nothing(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, database_url=empty_database_url)
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")

    applied = run_cli("rules", "apply", str(rules), env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "Rules in force: version 1, 1 rule(s)."
    again = run_cli("rules", "apply", str(rules), env=env, cwd=tmp_path)
    assert "already in force (version 1)" in again.stdout

    exported = run_cli("rules", "export", env=env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "Akutte sager først" in exported.stdout
    assert "brådskande" in exported.stdout
    copy = tmp_path / "copy.yaml"
    copy.write_text(exported.stdout, encoding="utf-8")
    assert "already in force" in run_cli("rules", "apply", str(copy), env=env, cwd=tmp_path).stdout


def test_an_invalid_file_is_one_line_naming_the_place_and_changes_nothing(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, database_url=empty_database_url)
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("message.subject", "message.colour"), encoding="utf-8")
    result = run_cli("rules", "apply", str(rules), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "rules.0.when" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli("rules", "apply", str(tmp_path / "nope.yaml"), env=env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr
