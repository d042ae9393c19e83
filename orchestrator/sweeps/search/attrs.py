"""What a study records in Optuna, shared by every worker through the storage.

Study user attrs tie the study to its MLflow parent run, baseline and space; trial user
attrs tie a trial to its MLflow run and to the process training it.
"""

from __future__ import annotations

# Study user attrs.
STUDY_PARENT = "sweep.mlflow_parent_run_id"
STUDY_BASELINE = "sweep.baseline_run_id"
STUDY_SPACE = "sweep.space"

# Trial user attrs.
ATTR_RUN = "sweep.mlflow_run_id"
ATTR_WORKER = "sweep.worker"  # host:pid:trial-number of the process training it
ATTR_REASON = "sweep.fail_reason"
ATTR_SURPLUS = "sweep.surplus"  # lost the race for the last slot of the budget: not trained
ATTR_REUSED = "sweep.reused_from"  # the MLflow run whose result stands for this trial
ATTR_BASELINE = "sweep.baseline"  # the enqueued trial 0: the baseline's own values
