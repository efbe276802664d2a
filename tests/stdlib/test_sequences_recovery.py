"""discover on series simulated from the grammar (the cases of benchmarks/sequences.py's recovery check,
which runs ten seeds and reports the rate): the most probable structure is the generating one."""

import jax
import pytest

import ppl
from benchmarks.sequences import RECOVERY_CASES, simulated
from stdlib import sequences as seq


@pytest.mark.slow  # ~3 min on 2 cores: one scorer compile (96 points, 100 changepoint candidates), two searches
@pytest.mark.parametrize("seed", [0, 2])  # a line and a yearly cycle; an AR(1) and a yearly cycle
def test_discover_recovers_the_generating_structure(seed):
    expression, formula = RECOVERY_CASES[seed % len(RECOVERY_CASES)]
    explained = seq.discover(jax.random.key(seed), simulated(seed % len(RECOVERY_CASES), seed), periods=(12,),
                             budget=ppl.infer.Budget(steps=6), progress=False)
    grammar = explained.grammar
    truth = grammar.signature(grammar.space.encode(expression))
    assert grammar.signature(explained.found.codes[explained._best]) == truth, (formula, explained)
