"""Model tests use one torch thread: their tensors are tiny, and on a small machine that is
shared with other processes, OpenMP threads waiting on each other cost far more than they
bring (a smoke run measured 3.5 s with 1 thread and 49 s with 2 under load)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
