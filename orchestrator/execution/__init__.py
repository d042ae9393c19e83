"""How and where runs train: one spec -> one MLflow run (runner.py), the specs of a command
on this machine (local.py), local worker processes (processes.py); `RunEnv` (env.py) is
what the runs of one command share, `RunSpec`/`Outcome` (spec.py) what goes in and comes
out, estimate.py the time before training. Only `orchestrator/sweeps/` imports this package.
"""
