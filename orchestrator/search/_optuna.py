"""The one place that reaches into Optuna's private attributes. Keep it small: each use says
why no public API does the job, so an Optuna upgrade that breaks it breaks only here."""

from __future__ import annotations

from typing import Any


def mark_grid_point(study, storage, sampler, point: dict[str, Any]) -> None:
    """Tell GridSampler which grid point the enqueued baseline trial (still WAITING) is.

    `enqueue_trial` is the public way to make the baseline trial 0, but GridSampler skips
    enqueued trials in `before_trial` and gives them no grid id: the grid would train the
    baseline's point a second time, and its `after_trial` reads the grid id of every trial
    (a KeyError on the enqueued one). Optuna has no public API to map params to a grid id:
    the grid order is GridSampler's own shuffle, held in its private attributes.
    """
    from optuna.trial import TrialState

    names = sampler._param_names  # private: sorted names, the order of a grid point's values
    grids = sampler._all_grids  # private: the shuffled grid; a grid id is an index in it
    key = tuple(point[n] for n in names)
    if key not in grids:
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        # private: GridSampler compares a trial's "search_space" system attr with this copy
        # (sorted, values as lists) to decide whether the trial belongs to its grid.
        storage.set_trial_system_attr(trial_id, "search_space", sampler._search_space)
        storage.set_trial_system_attr(trial_id, "grid_id", grids.index(key))
