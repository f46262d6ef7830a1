"""`mission schedule`: exit codes and one-line reasons; add/list/delete against a real server."""

from __future__ import annotations

import pytest

from cli.main import main


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "g", "--cron", "99 * * *"], "Invalid cron string"),
        (["add", "g", "--every", "10"], "between 60 s (the shortest)"),
        (["add", "g", "--cron", "0 8 * * 1", "--timezone", "Mars/Olympus"], "Invalid timezone"),
        (["add", "g", "--every", "3600", "--budget-tokens", "0"], "max_tokens"),
        (["pause", "not-an-id"], "is not a recurring goal id"),
    ],
)
def test_invalid_schedule_exits_2_with_a_one_line_reason(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mission: ") and err.count("\n") == 1 and says in err, err


@pytest.mark.slow
def test_schedule_add_list_pause_and_delete_exit_0(
    prefect_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.serve import goal_deployment

    goal_deployment().apply()  # what `mission up` registers
    assert main(["schedule", "add", "weekly digest", "--cron", "0 8 * * 1",
                 "--timezone", "Europe/Paris", "--budget-tokens", "5000"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip()
    schedule_id = line.split()[0]
    assert "active" in line and "'0 8 * * 1' Europe/Paris" in line and "weekly digest" in line

    assert main(["schedule", "list"]) == 0
    assert schedule_id in capsys.readouterr().out
    assert main(["schedule", "pause", schedule_id]) == 0
    assert "paused" in capsys.readouterr().out
    assert main(["schedule", "delete", schedule_id]) == 0
    capsys.readouterr()
    assert main(["schedule", "list"]) == 0
    assert schedule_id not in capsys.readouterr().out
    assert main(["schedule", "delete", schedule_id]) == 2
    assert "no recurring goal has id" in capsys.readouterr().err
