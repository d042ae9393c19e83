"""SlurmOptions: flags, a profile's [slurm] table, and what they ask of sbatch."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserError
from orchestrator.execution.slurm_options import SlurmOptions


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        (90, 90),
        ("90", 90),
        ("5:30", 6),  # M:S, rounded up to whole minutes (what submitit's --time takes)
        ("1:30:00", 90),
        ("2-0", 2880),  # D-H
        ("1-2:30", 26 * 60 + 30),  # D-H:M
        ("0-0:0:59", 1),  # D-H:M:S
    ],
)
def test_time_reads_slurms_formats(value, minutes):
    assert SlurmOptions(time=value).time_minutes == minutes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time": 0}, "--slurm-time = 0: expected minutes or Slurm's [D-]H:M:S"),
        ({"time": "1h"}, "--slurm-time = '1h': expected minutes"),
        ({"time": True}, "--slurm-time = True: expected minutes"),
        ({"cpus": 0}, "--slurm-cpus = 0: expected a whole number of CPUs per task, at least 1"),
        ({"cpus": "2"}, "--slurm-cpus = '2': expected a whole number"),
        ({"gpus": -1}, "--slurm-gpus = -1: expected a whole number of GPUs per task, 0 or more"),
        ({"mem": "8GB"}, "--slurm-mem = '8GB': expected Slurm's --mem"),
        ({"partition": "gpu queue"}, "--slurm-partition = 'gpu queue': expected a Slurm name"),
        ({"account": ""}, "--slurm-account = '': expected a Slurm name"),
        ({"sbatch": ("-q high",)}, "'-q high' is not a long sbatch option like --qos=high"),
        ({"sbatch": ("--time=10",)}, "--time is set by sweep (use --slurm-time)"),
        ({"sbatch": ("--array=0-9",)}, "--array is set by sweep (the job array is sweep's)"),
        ({"sbatch": ("--no-requeue",)}, "--no-requeue is set by sweep"),
        ({"time": 1, "signal_delay_s": 60}, "--slurm-signal-delay = 60: expected whole seconds"),
        ({"max_timeouts": -1}, "--slurm-max-timeouts = -1: expected a whole number, 0 or more"),
    ],
)
def test_bad_flags_are_refused_with_the_flag_named(kwargs, message):
    with pytest.raises(UserError) as e:
        SlurmOptions(**kwargs)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_profile_table_is_read_and_its_mistakes_name_the_profile_key():
    table = {"partition": "gpu", "time": "2:00:00", "gpus": 1, "sbatch": ["--qos=high"]}
    options = SlurmOptions.from_table(table, "profile mid-gpu")
    assert (options.partition, options.time_minutes, options.gpus) == ("gpu", 120, 1)
    assert options.sbatch == ("--qos=high",)

    with pytest.raises(UserError, match=r"^\[slurm\] cpus in profile p = 0: expected a whole"):
        SlurmOptions.from_table({"cpus": 0}, "profile p")
    with pytest.raises(UserError, match=r"^\[slurm\] sbatch in profile p = '--qos=x': expected a"):
        SlurmOptions.from_table({"sbatch": "--qos=x"}, "profile p")  # a string, not a list
    with pytest.raises(UserError, match=r"^\[slurm\] in profile p: unknown key 'gpu' \(known: "):
        SlurmOptions.from_table({"gpu": 1}, "profile p")


def test_flags_override_the_table_and_add_sbatch_lines():
    table = SlurmOptions.from_table({"time": 30, "cpus": 2, "sbatch": ["--qos=low"]}, "profile p")
    options = table.merged(time="1:00:00", cpus=None, partition="short", sbatch=["--qos=high"])
    assert (options.time_minutes, options.cpus, options.partition) == (60, 2, "short")
    assert options.sbatch == ("--qos=low", "--qos=high")
    # a bad flag over a good table is the flag's fault
    with pytest.raises(UserError, match="^--slurm-cpus = 0"):
        table.merged(cpus=0)


def test_what_the_options_ask_of_sbatch():
    options = SlurmOptions(
        partition="gpu",
        time="1:30:00",
        cpus=4,
        gpus=2,
        mem="16g",
        account="lab",
        sbatch=("--qos=high", "#SBATCH --exclusive"),
    )
    assert options.executor_parameters("sweep-search") == {
        "job_name": "sweep-search",
        "time": 90,
        "cpus_per_task": 4,
        "gpus_per_node": 2,
        "mem": "16G",
        "partition": "gpu",
        "account": "lab",
        "signal_delay_s": 90,
        "additional_parameters": {"requeue": True, "qos": "high", "exclusive": True},
    }
    # the defaults: one CPU, no GPU; the warning signal comes at half a short time limit
    short = SlurmOptions(time=1).executor_parameters("x")
    assert (short["signal_delay_s"], short["cpus_per_task"]) == (30, 1)
    assert "gpus_per_node" not in short and "partition" not in short
