import pytest
import torch

from model.masks import (
    GeneratorMasks,
    HashMasks,
    drop_count,
    dropout_seed,
    member_mask,
    scales,
    thresholds,
)


def group_mask(masks, like, probs, site=0, counter=None):
    drops = [drop_count(p) for p in probs]
    return member_mask(masks, like, thresholds(masks, drops, "cpu"), scales(drops, like.dtype, "cpu"),
                       site, counter)  # fmt: skip


def test_a_member_draws_its_solo_masks():
    """Member k of a group gets, site after site, the masks its run draws alone."""
    like = torch.empty(3, 7, 11)
    group = GeneratorMasks([5, 9, 2])
    alone = GeneratorMasks([9])
    for _ in range(3):
        fused = group_mask(group, like, [0.1, 0.3, 0.0])
        assert torch.equal(fused[1], alone.keep(like[1], 0.3))
    assert bool((fused[2] == 1).all())  # dropout 0: all kept, scale 1
    assert not torch.equal(fused[0] == 0, fused[1] == 0)


def test_generator_masks_drop_p_and_keep_the_mean():
    m = GeneratorMasks([1]).keep(torch.empty(1000, 1001), 0.1)
    assert abs((m == 0).float().mean().item() - 0.1) < 0.002
    assert m.unique().tolist() == [0.0, pytest.approx(65536 / (65536 - 6554))]
    assert abs(m.mean().item() - 1.0) < 0.005
    assert torch.equal(GeneratorMasks([1]).keep(torch.empty(1000, 1001), 0.1), m)  # seeded
    torch.manual_seed(123)  # torch's global generator plays no part
    assert torch.equal(GeneratorMasks([1]).keep(torch.empty(1000, 1001), 0.1), m)
    assert not torch.equal(GeneratorMasks([2]).keep(torch.empty(1000, 1001), 0.1), m)


def test_hash_masks_are_a_function_of_seed_site_counter_and_element():
    like = torch.empty(3, 50_000)
    c = torch.tensor(7)
    group = group_mask(HashMasks([5, 9, 2]), like, [0.1, 0.1, 0.1], site=4, counter=c)
    alone = group_mask(HashMasks([9]), like[:1], [0.1], site=4, counter=c)
    assert torch.equal(group[1], alone[0])
    assert torch.equal(group, group_mask(HashMasks([5, 9, 2]), like, [0.1] * 3, 4, c))
    other_site = group_mask(HashMasks([9]), like[:1], [0.1], site=5, counter=c)
    other_step = group_mask(HashMasks([9]), like[:1], [0.1], site=4, counter=c + 1)
    for other in (other_site, other_step, group[0:1], group[2:3]):
        agree = ((other == 0) == (alone == 0)).float().mean().item()
        assert abs(agree - (0.9 * 0.9 + 0.1 * 0.1)) < 0.01  # independent masks agree by chance
    big = group_mask(HashMasks([1]), torch.empty(1, 1_000_000), [0.2], 0, c)
    assert abs((big == 0).float().mean().item() - 0.2) < 0.002
    assert abs(big.mean().item() - 1.0) < 0.005


def test_dropout_seed_is_apart_from_the_batch_seeds():
    seeds = {dropout_seed(s) for s in range(1000)}
    assert len(seeds) == 1000 and not seeds & set(range(10_000))
    assert all(0 <= s < 2**64 for s in seeds)
