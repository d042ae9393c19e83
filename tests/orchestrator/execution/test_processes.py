"""The signal gate of a search worker: held back while Optuna books a trial, acted on in
the objective. Real signals to this process (`signal.raise_signal`)."""

from __future__ import annotations

import signal

import pytest

from orchestrator.execution.processes import GATED, SignalGate


class Stop(Exception):
    pass


@pytest.fixture
def seen():
    """The handler of every gated signal for the test: records the signal, raises Stop on
    SIGTERM (as a worker's handler raises Interrupted); the usual handlers come back."""
    got: list[int] = []

    def handler(signum, frame):
        got.append(signum)
        if signum == signal.SIGTERM:
            raise Stop(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, handler) for sig in GATED}
    yield got
    for sig, h in before.items():
        signal.signal(sig, h)


def test_a_signal_inside_closed_acts_when_the_block_ends(seen):
    gate = SignalGate()
    reached = []
    with pytest.raises(Stop, match="SIGTERM"), gate.closed():
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGHUP)
        reached.append("end of block")  # not cut short
        assert seen == []
    assert reached == ["end of block"]
    assert seen == [signal.SIGTERM, signal.SIGHUP]  # each reached the usual handler, in order
    with pytest.raises(Stop):  # the usual handler is back
        signal.raise_signal(signal.SIGTERM)


def test_open_delivers_what_was_held_then_lets_signals_act_at_once(seen):
    gate = SignalGate()
    steps = []
    with gate.closed():
        signal.raise_signal(signal.SIGHUP)
        steps.append("booked")
        with gate.open():
            assert seen == [signal.SIGHUP]  # delivered as the gate opened
            signal.raise_signal(signal.SIGUSR2)
            assert seen == [signal.SIGHUP, signal.SIGUSR2]  # at once
            steps.append("trained")
        signal.raise_signal(signal.SIGHUP)  # closed again: held
        assert seen == [signal.SIGHUP, signal.SIGUSR2]
        steps.append("told")
    assert steps == ["booked", "trained", "told"]
    assert seen == [signal.SIGHUP, signal.SIGUSR2, signal.SIGHUP]


def test_a_signal_in_open_raises_inside_it_and_the_gate_is_left_cleanly(seen):
    gate = SignalGate()
    with pytest.raises(Stop), gate.closed(), gate.open():
        signal.raise_signal(signal.SIGTERM)
        pytest.fail("the signal did not act inside open()")
    assert seen == [signal.SIGTERM]
    with gate.open():  # not closed: a no-op
        pass
