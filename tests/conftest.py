"""Shared models for the tests: defined once, so compiled programs are shared too."""

import os

# the ppl command's persistent compilation cache stays off in the tests (hermetic runs; test_cli checks it)
os.environ.setdefault("PPL_CACHE_DIR", "off")

import jax  # noqa: E402
import jax.numpy as jnp
import pytest
from numpyro.distributions import Distribution, constraints

import ppl
from ppl import dist


class Laplace2(Distribution):
    """A user-defined numpyro distribution (scalar Laplace), to check that any works."""

    support = constraints.real
    arg_constraints = {"loc": constraints.real}

    def __init__(self, loc=0.0):
        self.loc = jnp.asarray(loc)
        super().__init__(batch_shape=jnp.shape(loc))

    def sample(self, key, sample_shape=()):
        return self.loc + jax.random.laplace(key, sample_shape + self.batch_shape)

    def log_prob(self, value):
        return -jnp.abs(value - self.loc) - jnp.log(2.0)


@ppl.model
def plain(scale):
    x = ppl.sample("x", dist.Normal(0.0, scale))
    y = ppl.sample("y", dist.Gamma(2.0, 1.0))
    ppl.sample("z", dist.Normal(x, y))
    return x + y


@ppl.model
def stroke(start):
    delta = ppl.sample("delta", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    ppl.sample("width", dist.LogNormal(0.0, 0.3))
    return start + delta


@ppl.model
def two_strokes(start):
    a = ppl.sample("a", stroke, start)
    b = ppl.sample("b", stroke, a)
    return b


@ppl.model
def vector_valued(mean):
    w = ppl.sample("w", dist.Dirichlet(jnp.ones(3)))
    v = ppl.sample("v", dist.MultivariateNormal(mean, jnp.eye(2) * 0.5))
    u = ppl.sample("u", dist.Normal(v, 1.0))  # batch-shaped site, no to_event
    ppl.sample("l", Laplace2(jnp.sum(w)))
    return u


@ppl.model
def mixed(p):
    coin = ppl.sample("coin", dist.Bernoulli(p))
    which = ppl.sample("which", dist.Categorical(jnp.array([0.2, 0.3, 0.5])))
    count = ppl.sample("count", dist.Poisson(3.0))
    mu = jnp.array([-1.0, 0.0, 2.0])[which] + coin
    obs = ppl.sample("obs", dist.Normal(mu, 1.0 + count).expand([3]).mask(jnp.array([True, True, False])))
    return obs


@ppl.model
def growing(n):
    """The set of addresses depends on a static argument: x_0 ... x_{n-1}."""
    total = 0.0
    for i in range(n):
        total = total + ppl.sample(f"x_{i}", dist.Normal(total, 1.0))
    return total


# (model, args, a change to one continuous choice) for the property tests
MODELS = {
    "plain": (plain, (1.5,), {"x": 0.3}),
    "nested": (two_strokes, (jnp.zeros(2),), {"b/delta": jnp.array([0.5, -0.5])}),
    "vector": (vector_valued, (jnp.ones(2),), {"v": jnp.array([0.1, 0.2])}),
    "mixed": (mixed, (0.3,), {"which": 2}),
}


@pytest.fixture(params=sorted(MODELS))
def case(request):
    return MODELS[request.param]
