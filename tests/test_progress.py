"""The shared progress display."""

from opencohort.progress import progress_steps


def test_progress_steps__hidden_off_terminal(capsys) -> None:
    with progress_steps() as step:
        step("stage one", 0.5)
        step("stage one", 1.0)
        step("stage two", 1.0)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "stage one" not in captured.err  # stderr is not a terminal under pytest


def test_progress_steps__no_progress_flag_hides(capsys) -> None:
    with progress_steps(hidden=True) as step:
        step("stage", 1.0)
    assert capsys.readouterr().err == ""
