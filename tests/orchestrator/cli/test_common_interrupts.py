"""`handled`: an interrupt's exit code is 128 + the signal (130 Ctrl-C, 143 SIGTERM, 129
SIGHUP), and only a command that records runs says its current run was ended KILLED."""

from __future__ import annotations

import pytest
import typer

from orchestrator.cli.common import handled
from orchestrator.errors import Interrupted, exit_code, signal_of


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        (KeyboardInterrupt(), 130, "interrupted (Ctrl-C)"),
        (Interrupted("SIGTERM"), 143, "interrupted (SIGTERM)"),
        (Interrupted("SIGHUP"), 129, "interrupted (SIGHUP)"),
        (KeyboardInterrupt("SIGTERM"), 143, "interrupted (SIGTERM)"),  # a trial's, for Optuna
    ],
)
@pytest.mark.parametrize("trains", [False, True])
def test_interrupts_exit_128_plus_the_signal(capsys, error, code, said, trains):
    @handled(trains=trains)
    def command():
        raise error

    with pytest.raises(typer.Exit) as e:
        command()
    assert e.value.exit_code == code == exit_code(error)
    err = capsys.readouterr().err
    assert said in err
    assert ("the current run was ended as KILLED" in err) is trains  # report/plot: no run


def test_worker_exit_codes_name_their_signal():
    assert [signal_of(c) for c in (130, 143, 129, -15, -2, 0, 1, -9, None)] == [
        "SIGINT", "SIGTERM", "SIGHUP", "SIGTERM", "SIGINT", None, None, None, None
    ]  # fmt: skip


class DiesWithCtrlC:
    """Where Ctrl-C's KeyboardInterrupt can land: a finalizer the garbage collector calls,
    which Python cannot propagate from ("Exception ignored in ...")."""

    def __del__(self):
        raise KeyboardInterrupt()


def test_a_ctrl_c_that_lands_in_a_finalizer_still_interrupts_the_command(capsys):
    import time

    reached = []

    @handled
    def command():
        DiesWithCtrlC()  # dropped by Python where it was raised
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the command goes on working
            time.sleep(0.01)
        reached.append("the end, as if no Ctrl-C had come")

    with pytest.raises(typer.Exit) as e:
        command()
    assert e.value.exit_code == 130 and reached == []
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C)" in err and "Exception ignored" not in err


def test_a_command_leaves_the_unraisable_hook_and_sigalrm_as_it_found_them():
    import signal
    import sys

    hook, alarm = sys.unraisablehook, signal.getsignal(signal.SIGALRM)
    handled(lambda: None)()
    assert sys.unraisablehook is hook and signal.getsignal(signal.SIGALRM) is alarm
