"""Do the verdicts hold whenever a table is looked at, and how many seeds do they need? False
claims and power by simulation through the real decision code, with Monte Carlo standard
errors: `anytime` is what ships, orchestrator/results/anytime.py (decide_table's batched core,
table_paths); `before` is the fixed-n method that shipped before issue 16 (benchmarks/
fixed_n.py: paired t with Holm; the Pocock-type spending its --until-clear replayed), one
Python call per table, so fewer tables.

    python benchmarks/verdicts.py [--reps 20000] [--now-reps 2000] [--seed 0]

Model (issue 16): a run's best val loss is 2.5 + a seed effect (shared by every run of that
seed, sd 0.05) + the configuration's true difference + its own noise; the paired difference
of two runs on one seed has SD 0.03. Margin 0.02, alpha 0.05. A row's claim is false when
it says better but its true difference is >= 0, worse but <= 0, equivalent but |true
difference| >= margin; `fw` counts tables with any false claim (family-wise), b/w/e the
kinds. Patterns: a table after every added seed (2..20 seeds, every row); a plain look at 3
seeds and then --until-clear to 10 (a row stops when decided); confirm of a null search
(the best 3 of N single-seed draws at seed 1, re-trained on 3 seeds: `now` pairs on seeds
1-3, so seed 1 is the selected draw, `anytime` on 3 fresh seeds).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixed_n as V

from orchestrator.results import anytime as A
from orchestrator.results.power import decision_power, seeds_needed
from orchestrator.results.verdicts import FINAL

SD, SEED_SD, MARGIN, ALPHA = 0.03, 0.05, 0.02, 0.05
RUN_SD = SD / math.sqrt(2)
NEW_FINAL = [A.CODES.index(v) for v in FINAL]


def draw(rng, reps, deltas, seeds, run_sd=None, base_sd=RUN_SD):
    """Baseline [R, S] and variant [R, K, S] best val losses."""
    run_sd = np.full(len(deltas), RUN_SD) if run_sd is None else np.asarray(run_sd)
    seed = rng.normal(0, SEED_SD, (reps, 1, seeds))
    base = 2.5 + seed[:, 0] + rng.normal(0, base_sd, (reps, seeds))
    noise = rng.normal(0, 1, (reps, len(deltas), seeds)) * run_sd[None, :, None]
    return base, 2.5 + seed + np.asarray(deltas)[None, :, None] + noise


def new_paths(base, var, mask=None, hist=None):
    K, S = var.shape[1:]
    mask = np.ones((K, S), dtype=bool) if mask is None else mask
    hmask = None if hist is None else np.isfinite(hist[0])
    return A.table_paths(var - base[:, None], mask, hist, hmask, ALPHA)


def new_codes(paths, diverged=0):
    return A.verdict_codes(paths.lo, paths.hi, paths.n_pairs, diverged, MARGIN)


def new_until_clear(codes, start=3, cap=10):
    """Each row stops at its first final verdict from `start` seeds on (else at cap)."""
    final = np.isin(codes[..., :cap], NEW_FINAL)
    final[..., : start - 1] = False
    stop = np.where(final.any(-1), final.argmax(-1), cap - 1)
    return np.take_along_axis(codes, stop[..., None], -1)[..., 0], stop + 1


def false_claims(claims, deltas):
    """claims: verdict names [R, K] (or [R, K, looks]); -> rates (fw, better, worse, equiv)."""
    d = np.asarray(deltas)[None, :]
    if claims.ndim == 3:
        d = d[..., None]
    kinds = [
        (claims == "better") & (d >= 0),
        (claims == "worse") & (d <= 0),
        (claims == "equivalent") & (np.abs(d) >= MARGIN),
    ]
    per = [k.reshape(len(claims), -1).any(1) for k in kinds]
    return [np.logical_or.reduce(per).mean(), *(p.mean() for p in per)]


def new_names(codes):
    return np.asarray([v.value for v in A.CODES])[codes]


def _dicts(base, var, n, keep=None):
    b = {s + 1: float(base[s]) for s in range(n)}
    vs = [{s + 1: float(v[s]) for s in range(n) if keep is None or keep[s]} for v in var]
    return b, vs


def now_every_look(base, var, n_from=2, keep=None):
    out = np.empty((len(base), var.shape[1], var.shape[2] - n_from + 1), dtype=object)
    for r in range(len(base)):
        for j, n in enumerate(range(n_from, var.shape[2] + 1)):
            b, vs = _dicts(base[r], var[r], n, keep)
            rows = V.decide([V.compare(b, v) for v in vs], ALPHA, MARGIN)
            out[r, :, j] = [row.verdict.value for row in rows]
    return out


def now_until_clear(base, var, start=3, cap=10, plain_first=True):
    """A plain (fixed-n) look at `start` seeds, then the replayed looks start..cap."""
    K, n_looks = var.shape[1], cap - start + 1
    claims = np.empty((len(base), K, 2), dtype=object)
    seeds = np.zeros((len(base), K))
    for r in range(len(base)):
        b, vs = _dicts(base[r], var[r], start)
        plain = V.decide([V.compare(b, v) for v in vs], ALPHA, MARGIN)
        claims[r, :, 0] = [row.verdict.value if plain_first else "" for row in plain]
        rows = None
        for look in range(1, n_looks + 1):
            b, vs = _dicts(base[r], var[r], start + look - 1)
            out = V.decide_look(b, vs, look, n_looks, rows, ALPHA, MARGIN)
            for k, row in enumerate(out.rows):
                if row.verdict in V.FINAL and (rows is None or rows[k].verdict not in V.FINAL):
                    seeds[r, k] = start + look - 1
            rows = out.rows
            if not any(out.needs_seeds):
                break
        claims[r, :, 1] = [row.verdict.value for row in rows]
        seeds[r] = np.where(seeds[r] == 0, cap, seeds[r])
    return claims, seeds


def pct(p, n):
    if p == 0:
        return f"0 of {n}"
    digits = 2 if p < 0.01 else 1
    return f"{100 * p:.{digits}f}±{100 * math.sqrt(p * (1 - p) / n):.{digits}f}%"


def fmt(rates, n):
    fw, b, w, e = rates
    return f"{pct(fw, n)} (b {100 * b:.1f}, w {100 * w:.1f}, e {100 * e:.1f})"


def null_patterns(rng, reps, now_reps, rows):
    for k in (1, 5):
        deltas = [0.0] * k
        base, var = draw(rng, reps, deltas, 20)
        codes = new_codes(new_paths(base, var))
        new = false_claims(new_names(codes[..., 1:]), deltas)
        nb, nv = draw(rng, now_reps, deltas, 20)
        now = false_claims(now_every_look(nb, nv), deltas)
        rows.append(["null: a table after every seed, 2..20", k, fmt(now, now_reps),
                     fmt(new, reps), "≤ 5%"])  # fmt: skip
        v, _ = new_until_clear(codes)
        new = false_claims(new_names(v), deltas)
        now = false_claims(now_until_clear(nb, nv)[0], deltas)
        rows.append(["null: a plain look at 3, then until-clear 3..10", k, fmt(now, now_reps),
                     fmt(new, reps), "≤ 5%"])  # fmt: skip


def confirm(rng, reps, now_reps, rows):
    for trials in (8, 20):
        top = 3
        # new: the top trials re-trained on 3 fresh seeds, the baseline on the same seeds
        base, var = draw(rng, reps, [0.0] * trials, 4)
        pick = np.argsort(var[:, :, 0] - base[:, None, 0], axis=1)[:, :top]
        chosen = np.take_along_axis(var[:, :, 1:], pick[:, :, None], axis=1)
        codes = new_codes(new_paths(base[:, 1:], chosen))
        new = false_claims(new_names(codes[..., -1]), [0.0] * top)
        nb, nv = draw(rng, now_reps, [0.0] * trials, 3)
        npick = np.argsort(nv[:, :, 0] - nb[:, None, 0], axis=1)[:, :top]
        nchosen = np.take_along_axis(nv, npick[:, :, None], axis=1)  # seed 1: the selected draw
        now = np.empty((now_reps, top), dtype=object)
        for r in range(now_reps):
            b, vs = _dicts(nb[r], nchosen[r], 3)
            now[r] = [row.verdict.value for row in V.decide([V.compare(b, v) for v in vs])]
        now = false_claims(now, [0.0] * top)
        rows.append([f"confirm top {top} of a null search of {trials}: false better", top,
                     pct(now[1], now_reps), pct(new[1], reps), "≤ 2.5%"])  # fmt: skip
    # what a confirmation can find: one of the 3 confirmed rows truly -0.05, on fresh seeds
    base, var = draw(rng, reps, [-0.05, 0.0, 0.0], 10)
    codes = new_codes(new_paths(base, var))
    at3 = np.mean(new_names(codes[:, 0, 2]) == "better")
    v, n = new_until_clear(codes)
    clear = np.mean(new_names(v[:, 0]) == "better")
    rows.append(["confirm of 3 rows, one truly -0.05: power at 3 seeds / until-clear 3..10",
                 3, "—", f"{pct(at3, reps)} / {pct(clear, reps)} in {n[:, 0].mean():.1f}",
                 ""])  # fmt: skip


def at_the_margin(rng, reps, now_reps, rows):
    deltas = [MARGIN] * 5
    base, var = draw(rng, reps, deltas, 20)
    codes = new_codes(new_paths(base, var))
    nb, nv = draw(rng, now_reps, deltas, 20)
    every = false_claims(new_names(codes[..., 1:]), deltas)
    now = false_claims(now_every_look(nb, nv), deltas)
    rows.append(["5 rows at +margin: false equivalent, a table after every seed", 5,
                 pct(now[3], now_reps), pct(every[3], reps), "≤ 5%"])  # fmt: skip
    v, _ = new_until_clear(codes)
    new = false_claims(new_names(v), deltas)
    now = false_claims(now_until_clear(nb, nv)[0], deltas)
    rows.append(["5 rows at +margin: false equivalent, look at 3 then until-clear", 5,
                 pct(now[3], now_reps), pct(new[3], reps), "≤ 5%"])  # fmt: skip


def power(rng, reps, now_reps, rows, history=0):
    cases = [("1 row", [-0.05]), ("1 of 5 rows (4 null)", [-0.05, 0, 0, 0, 0])]
    cases += [] if history else [("5 of 5 rows", [-0.05] * 5)]
    for name, deltas in cases:
        # history: earlier sweeps on this baseline, 3 seeds each, other true differences
        extra = list(rng.normal(0, 0.05, history))
        base, var = draw(rng, reps, deltas + extra, 10)
        var, hist = var[:, : len(deltas)], var[:, len(deltas) :] - base[:, None]
        hist[:, :, 3:] = np.nan
        hist = hist if history else None
        v, n = new_until_clear(new_codes(new_paths(base, var, hist=hist)))
        p = np.mean(new_names(v[:, 0]) == "better")
        new = f"{pct(p, reps)} in {n[:, 0].mean():.1f} seeds (table {n.max(1).mean():.1f})"
        now = "—"
        if not history:
            nb, nv = draw(rng, now_reps, deltas, 10)
            claims, seeds = now_until_clear(nb, nv, plain_first=False)
            q = np.mean(claims[:, 0, 1] == "better")
            now = f"{pct(q, now_reps)} in {seeds[:, 0].mean():.1f} seeds"
        label = f"power at -0.05, until-clear 3..10: {name}"
        label += f", with {history} history arrays of 3 seeds" if history else ""
        rows.append([label, len(deltas), now, new, "≥ 80%, ≤ 8 seeds"])


def diverged(rng, reps, now_reps, rows):
    keep = np.ones(20, dtype=bool)
    keep[1::3] = False  # seeds 2, 5, 8, ...: a third of the variant's seeds diverge
    base, var = draw(rng, reps, [0.0], 20)
    mask = keep[None, :]
    codes = new_codes(new_paths(base, var, mask=mask), np.cumsum(~mask, axis=-1))[..., 1:]
    bad = np.isin(new_names(codes), ["better", "equivalent"]).any(axis=(1, 2)).mean()
    nb, nv = draw(rng, now_reps, [0.0], 20)
    now = now_every_look(nb, nv, keep=keep)  # the current code drops the diverged seeds
    now_bad = np.isin(now, ["better", "equivalent"]).any(axis=(1, 2)).mean()
    rows.append(["null row diverging on 1/3 of seeds: better/equivalent unmarked, every look",
                 1, pct(now_bad, now_reps), pct(bad, reps), "0"])  # fmt: skip
    # one plain table of 3 seeds, seed 2 diverged (the measurement of `now`)
    three = np.isin(new_names(codes[..., 1]), ["better", "equivalent"]).any(axis=1).mean()
    now3 = np.isin(now[..., 1], ["better", "equivalent"]).any(axis=1).mean()
    rows.append(["the same at one table of 3 seeds (seed 2 diverged)", 1, pct(now3, now_reps),
                 pct(three, reps), "0"])  # fmt: skip


def heterogeneous(rng, reps, rows):
    """Pooling active under noise it assumes away (new only)."""
    s = RUN_SD
    cases = [
        ("one row with 2x the run noise", dict(run_sd=[2 * s, s, s, s, s]), 0),
        ("baseline run variance 3x", dict(base_sd=math.sqrt(3) * s, run_sd=[s] * 5), 0),
        ("history quieter (run sd/2), 1 row", dict(run_sd=[s] + [s / 2] * 6), 6),
        ("history quieter (run sd/2), 5 rows", dict(run_sd=[s] * 5 + [s / 2] * 6), 6),
    ]
    for name, kw, history in cases:
        k = len(kw["run_sd"]) - history
        base, var = draw(rng, reps, [0.0] * (k + history), 20, **kw)
        var, hist = var[:, :k], var[:, k:] - base[:, None]
        hist[:, :, 3:] = np.nan
        paths = new_paths(base, var, hist=hist if history else None)
        new = false_claims(new_names(new_codes(paths)[..., 1:]), [0.0] * k)
        rows.append([f"null, pooling, {name}: a table after every seed", k, "—",
                     fmt(new, reps), "≤ 5%"])  # fmt: skip


def needed(rng, reps, rows):
    """seeds_needed with the truth as input, then tables of that many seeds."""
    a_pool = ALPHA / 5 * (1 - A.OWN_SHARE)
    for name, deltas, nu_now, level in (
        ("1 row at -0.04", [-0.04], 2, ALPHA),
        ("1 of 5 rows at -0.05, pooled", [-0.05, 0, 0, 0, 0], 10, a_pool),
    ):
        n = seeds_needed(deltas[0], SD, 3, nu_now, level, MARGIN, A.PRIOR_G)
        predicted = decision_power(deltas[0], SD, n, nu_now + n - 3, level, MARGIN, A.PRIOR_G)[0]
        base, var = draw(rng, reps, deltas, n)
        codes = new_codes(new_paths(base, var))[:, 0, -1]
        got = np.isin(codes, NEW_FINAL).mean()
        rows.append([f"seeds_needed for {name} (from 3): {n} seeds; predicted {predicted:.1%}",
                     len(deltas), "—", f"settled at {n}: {pct(got, reps)}", "≥ 80%"])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20000, help="simulated tables, anytime (shipped)")
    ap.add_argument("--now-reps", type=int, default=2000, help="tables, fixed-n (before)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    rows: list[list] = []
    start = time.perf_counter()
    null_patterns(rng, args.reps, args.now_reps, rows)
    confirm(rng, args.reps, args.now_reps, rows)
    at_the_margin(rng, args.reps, args.now_reps, rows)
    power(rng, args.reps, args.now_reps, rows)
    power(rng, args.reps, args.now_reps, rows, history=6)
    diverged(rng, args.reps, args.now_reps, rows)
    heterogeneous(rng, args.reps, rows)
    needed(rng, args.reps, rows)
    headers = ["figure", "rows", "before (fixed-n t)", "shipped (anytime)", "target"]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print(
        f"\n{args.reps} tables per figure (anytime), {args.now_reps} (before); ± one Monte Carlo "
        f"standard error; fw: any false claim in the table (b/w/e: better/worse/equivalent, "
        f"in %); {time.perf_counter() - start:.0f} s."
    )


if __name__ == "__main__":
    main()
