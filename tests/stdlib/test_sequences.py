"""stdlib.sequences: the Kalman filter against closed forms, the components' two descriptions agreeing,
and the grammar's collapsed (states integrated out) density against the explicit model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.testing import kalman_filter as oracle_filter
from stdlib import sequences as seq
from stdlib.sequences import statespace

KEY = jax.random.key(0)
T = 12
U = jnp.linspace(0.0, 1.0, T)
SCALE = seq.TimeScale(span=float(T - 1), step=1.0 / (T - 1))


def _random_model(key, dim=3, steps=T):
    a, q, h, p = jax.random.split(key, 4)
    transition = 0.9 * jnp.eye(dim) + 0.1 * jax.random.normal(a, (dim, dim))
    noise = jax.random.normal(q, (dim, dim))
    process = 0.1 * noise @ noise.T + 0.01 * jnp.eye(dim)
    row = jax.random.normal(h, (dim,))
    start = jax.random.normal(p, (dim, dim))
    covariance = start @ start.T + jnp.eye(dim)
    transitions = jnp.broadcast_to(transition, (steps, dim, dim)).at[0].set(jnp.eye(dim))
    processes = jnp.broadcast_to(process, (steps, dim, dim)).at[0].set(jnp.zeros((dim, dim)))
    model = statespace.StateSpace(transitions, processes, jnp.broadcast_to(row, (steps, dim)), jnp.asarray(0.3),
                                  jnp.zeros(dim), covariance)
    return model, (transition, process, row, covariance)


def _dense_covariance(model: statespace.StateSpace) -> np.ndarray:
    """Cov(y) by propagating the joint covariance of the states (the closed form for small T)."""
    f, q, h = (np.asarray(a, np.float64) for a in (model.transitions, model.process_noise, model.observations))
    steps, dim = h.shape
    # x_k = M_k x_0 + sum_j N_{k,j} w_j
    covariance = np.zeros((steps, steps))
    maps = []
    current = np.eye(dim)
    for k in range(steps):
        current = f[k] @ current
        maps.append(current)
    p0 = np.asarray(model.initial_covariance, np.float64)
    for i in range(steps):
        for j in range(steps):
            total = maps[i] @ p0 @ maps[j].T
            for m in range(1, min(i, j) + 1):
                left = np.eye(dim)
                for k in range(m + 1, i + 1):
                    left = f[k] @ left
                right = np.eye(dim)
                for k in range(m + 1, j + 1):
                    right = f[k] @ right
                total += left @ q[m] @ right.T
            covariance[i, j] = h[i] @ total @ h[j]
    return covariance + float(model.noise_variance) * np.eye(steps)


def _gaussian_log_density(y, covariance):
    _sign, log_det = np.linalg.slogdet(covariance)
    return -0.5 * (len(y) * np.log(2 * np.pi) + log_det + y @ np.linalg.solve(covariance, y))


def test_filter_matches_the_oracle_and_the_dense_gaussian():
    model, (transition, process, row, covariance) = _random_model(KEY)
    y = jax.random.normal(jax.random.key(1), (T,))
    result = statespace.kalman_filter(model, y)
    expected = oracle_filter(y[:, None], jnp.zeros(3), covariance, transition, process, row[None], 0.3 * jnp.eye(1))
    assert jnp.allclose(result.log_likelihood, expected.log_evidence, atol=1e-3)
    assert jnp.allclose(result.means, expected.filtered_means, atol=1e-3)
    dense = _gaussian_log_density(np.asarray(y, np.float64), _dense_covariance(model))
    assert abs(float(result.log_likelihood) - dense) < 1e-3


def test_missing_points_are_marginalised_exactly():
    model, _ = _random_model(jax.random.key(2))
    y = jax.random.normal(jax.random.key(3), (T,))
    observed = jnp.array([True, True, False, True, False, False, True, True, True, False, True, True])
    result = statespace.kalman_filter(model, y, observed)
    keep = np.asarray(observed)
    covariance = _dense_covariance(model)[np.ix_(keep, keep)]
    dense = _gaussian_log_density(np.asarray(y, np.float64)[keep], covariance)
    assert abs(float(result.log_likelihood) - dense) < 1e-3
    assert float(result.step_log_likelihoods[2]) == 0.0


def test_smoother_gives_the_exact_posterior_means():
    model, _ = _random_model(jax.random.key(4), dim=2)
    y = jax.random.normal(jax.random.key(5), (T,))
    means, covariances = statespace.kalman_smoother(model, statespace.kalman_filter(model, y))
    # E[f | y] for f_k = h x_k: Cov(f, y) Cov(y)^-1 y, with Cov(f, y) = Cov(y) - r I
    cov_y = _dense_covariance(model)
    cov_fy = cov_y - float(model.noise_variance) * np.eye(T)
    expected = cov_fy @ np.linalg.solve(cov_y, np.asarray(y, np.float64))
    fitted = np.einsum("td,td->t", np.asarray(model.observations), np.asarray(means))
    assert np.allclose(fitted, expected, atol=1e-3)
    variances = np.einsum("td,tde,te->t", np.asarray(model.observations), np.asarray(covariances),
                          np.asarray(model.observations))
    expected_variances = np.diag(cov_fy - cov_fy @ np.linalg.solve(cov_y, cov_fy.T))
    assert np.allclose(variances, expected_variances, atol=1e-3)


def test_forecast_paths_have_the_predictive_mean_and_variance():
    _model, (transition, process, row, _) = _random_model(jax.random.key(6), dim=2)
    mean, covariance = jnp.array([1.0, -0.5]), 0.2 * jnp.eye(2)
    horizon = 5
    future = (jnp.broadcast_to(transition, (horizon, 2, 2)), jnp.broadcast_to(process, (horizon, 2, 2)),
              jnp.broadcast_to(row, (horizon, 2)))
    paths = jax.vmap(lambda k: statespace.simulate_forward(k, mean, covariance, *future, 0.3))(
        jax.random.split(jax.random.key(7), 20_000))
    m, p = np.asarray(mean, np.float64), np.asarray(covariance, np.float64)
    for k in range(horizon):
        m = np.asarray(transition) @ m
        p = np.asarray(transition) @ p @ np.asarray(transition).T + np.asarray(process)
        predicted_mean = float(np.asarray(row) @ m)
        predicted_variance = float(np.asarray(row) @ p @ np.asarray(row)) + 0.3
        standard_error = np.sqrt(predicted_variance / paths.shape[0])
        assert abs(float(paths[:, k].mean()) - predicted_mean) < 5 * standard_error
        assert abs(float(paths[:, k].var()) / predicted_variance - 1) < 0.05


@pytest.mark.slow  # a Laplace compile per component (~12 s each)
@pytest.mark.parametrize("component", [seq.level(), seq.linear_trend(), seq.periodic(4.0, 2)],
                         ids=lambda c: c.name)
def test_a_static_component_model_has_the_kalman_evidence(component):
    """The explicit model (states sampled) and the state-space form (states integrated by the filter)
    describe one distribution: the Laplace evidence of the explicit model (exact: it is linear-Gaussian)
    equals the Kalman evidence of the state-space form."""

    @ppl.model
    def observed(u):
        f = ppl.sample("f", component.model, u, SCALE.span, SCALE.step)
        return ppl.sample("y", dist.Normal(f, 0.3).to_event(1))

    y = observed.simulate(jax.random.key(8), U).choices["y"]
    exact = ppl.infer.laplace(KEY, observed, {"y": y}, U, restarts=1, steps=0, newton=2).log_evidence
    grammar = seq.Grammar((component,), depth=1, changepoint=False)
    model = grammar.state_space(jnp.array([1]), jnp.zeros((1, seq.components.HYPER_SIZE)), jnp.sqrt(0.3**2), U,
                                SCALE)
    assert jnp.allclose(statespace.kalman_filter(model, y).log_likelihood, exact, atol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("component", [seq.random_walk(), seq.local_linear_trend(), seq.ar(1), seq.ar(2),
                                       seq.white_noise()],
                         ids=lambda c: c.name)
def test_a_dynamic_component_given_its_settings_has_the_kalman_evidence(component):
    settings = {name: value for (name, _), value in zip(component.priors, (0.6, 0.4, 0.5))}

    @ppl.model
    def observed(u):
        f = ppl.sample("f", component.model, u, SCALE.span, SCALE.step)
        return ppl.sample("y", dist.Normal(f, 0.3).to_event(1))

    y = observed.generate(jax.random.key(9), {"f": {"hyper": settings}}, U)[0].choices["y"]
    evidence = ppl.infer.laplace(KEY, observed, {"y": y, "f": {"hyper": settings}}, U, restarts=1, steps=0,
                                 newton=2).log_evidence  # log p(y, settings)
    exact = evidence - sum(prior.log_prob(settings[name]) for name, prior in component.priors)
    theta = jnp.zeros(seq.components.HYPER_SIZE).at[: len(settings)].set(jnp.array(list(settings.values())))
    grammar = seq.Grammar((component,), depth=1, changepoint=False)
    model = grammar.state_space(jnp.array([1]), theta[None], jnp.asarray(0.3), U, SCALE)
    assert jnp.allclose(statespace.kalman_filter(model, y).log_likelihood, exact, atol=2e-3)


def test_settings_from_standard_draws_follow_the_priors():
    component = seq.ar(1)
    draws = jax.vmap(component.settings)(jax.random.normal(KEY, (20_000, 2)))
    assert abs(float(jnp.mean(draws[:, 0]))) < 0.02  # Uniform(-1, 1)
    assert abs(float(jnp.mean(draws[:, 1])) - 0.5 * np.sqrt(2 / np.pi)) < 0.01  # HalfNormal(0.5)


def test_grammar_reads_slots_and_sides_from_a_code():
    grammar = seq.Grammar((seq.level(), seq.linear_trend(), seq.periodic(12)))
    space = grammar.space
    kinds, sides, valid = grammar.slots_of(space.encode(("+", "linear_trend", ("changepoint", "level", "level"))))
    assert kinds.tolist() == [2, 1, 1, 0] and sides.tolist() == [0, 1, 2, 0] and bool(valid)
    _, _, valid = grammar.slots_of(space.encode(("changepoint", ("changepoint", "level", "level"), "level")))
    assert not bool(valid)
    assert space.describe(space.encode(("+", "linear_trend", "periodic(12)"))) == "linear_trend + periodic(12)"


@pytest.mark.parametrize("length", [2, 3, 8])
def test_integrated_regression_stays_exact_when_the_noise_is_tiny(length):
    """Float32 with noise 1e-4 (standardised values ~1e4): the integrated regression matches the float64
    Gaussian. The difference form of the quadratic gave +512 where the truth is -165.6 (8 points)."""
    rng = np.random.default_rng(length)
    t = np.linspace(0.0, 1.0, length)
    design = np.stack([np.full(length, 2.0), 4.0 * t], axis=1)
    y = design @ rng.normal(size=2) + 1e-3 * rng.normal(size=length)
    for noise in (1e-1, 1e-2, 1e-3, 1e-4):
        covariance = design @ design.T + noise**2 * np.eye(length)
        exact = -0.5 * (length * np.log(2 * np.pi) + np.linalg.slogdet(covariance)[1]
                        + y @ np.linalg.solve(covariance, y))
        got = seq.statespace.static_log_likelihood(jnp.asarray(y, jnp.float32), jnp.asarray(design, jnp.float32),
                                                   jnp.ones(2), jnp.asarray(noise**2, jnp.float32))
        assert abs(float(got) - exact) < 1e-3 * max(1.0, abs(exact)), (noise, float(got), exact)


def test_codes_with_one_signature_share_the_prior_and_are_counted():
    """The posterior over structures adds ``multiplicity * prior``: every code with a signature has the same
    prior, and multiplicity counts them."""
    grammar = seq.Grammar((seq.level(), seq.linear_trend(), seq.random_walk()))
    codes = np.asarray(grammar.space.enumerate())
    log_priors = np.asarray(grammar.space.log_prior(jnp.asarray(codes)))
    groups: dict = {}
    for code, log_prior in zip(codes, log_priors):
        if bool(grammar.slots_of(code)[2]):
            groups.setdefault(grammar.signature(code), []).append((code, log_prior))
    for members in groups.values():
        assert np.ptp([log_prior for _, log_prior in members]) < 1e-5
        assert all(grammar.multiplicity(code) == len(members) for code, _ in members)
    assert grammar.multiplicity(grammar.space.encode(("+", "level", ("+", "linear_trend", "random_walk")))) == 12
    assert grammar.identity(grammar.space.encode(("+", "level", "random_walk"))) == \
        grammar.identity(grammar.space.encode(("+", "random_walk", "level")))


def test_structure_prior_costs_each_component_and_is_shared_by_the_codes_of_a_structure():
    """``Grammar.log_prior``: normalised over the grammar's codes, equal among the codes of one structure,
    ``component_cost`` nats per component and ``hyperparameter_cost`` per hyperparameter between structures,
    ``-inf`` outside the grammar (two changepoints)."""
    grammar = seq.Grammar((seq.level(), seq.linear_trend(), seq.random_walk()), component_cost=1.5,
                          hyperparameter_cost=0.25)
    codes = np.asarray(grammar.space.enumerate())
    log_priors = np.asarray(jax.jit(jax.vmap(grammar.log_prior))(jnp.asarray(codes)))
    valid = np.asarray(jax.vmap(grammar.slots_of)(jnp.asarray(codes))[2])
    assert np.all(np.isfinite(log_priors) == valid)
    assert abs(np.logaddexp.reduce(log_priors[valid]) - 0.0) < 1e-5
    mass: dict = {}
    for code, log_prior in zip(codes[valid], log_priors[valid]):
        signature = grammar.signature(code)
        mass.setdefault(signature, []).append(log_prior)
        assert abs(log_prior - mass[signature][0]) < 1e-5
    structure = {signature: np.logaddexp.reduce(values) for signature, values in mass.items()}
    one = structure[(("both", "level"),)]
    assert abs(structure[(("both", "level"), ("both", "random_walk"))] - (one - 1.75)) < 1e-5  # + a variance
    assert abs(structure[(("after", "level"), ("before", "linear_trend"))] - (one - 1.5)) < 1e-5
    assert abs(structure[(("both", "level"), ("both", "linear_trend"), ("both", "random_walk"))] - (one - 3.25)) < 1e-5
    twice = grammar.space.encode(("changepoint", ("changepoint", "level", "level"), "level"))
    assert float(grammar.log_prior(twice)) == -np.inf


@pytest.mark.slow  # ~40 s: a Laplace compile of the explicit grammar model
def test_collapsed_density_integrates_the_states_of_the_explicit_model():
    """Given a changepoint structure and its settings, the collapsed density (states integrated by the filter,
    the changepoint time by enumeration) equals the explicit model's evidence: Laplace over its states
    (exact) for every changepoint position, averaged over the uniform prior."""
    grammar = seq.Grammar((seq.level(), seq.linear_trend()), depth=2, candidates=4)
    code = grammar.space.encode(("changepoint", "level", "linear_trend"))
    observed = jnp.ones(T, bool)
    args = (U, SCALE.span, SCALE.step, observed)
    trace = grammar.space.model.simulate(jax.random.key(10), code, *args)
    y = trace.choices["obs"]["value"]
    collapsed = grammar.collapsed.assess({"settings": jnp.zeros((2, 1)), "noise": 0.3, "value": y}, code, *args)
    prior_settings = dist.Normal(0.0, 1.0).log_prob(jnp.zeros(2)).sum()
    prior_noise = dist.HalfNormal(seq.grammar.NOISE_SCALE).log_prob(0.3)
    collapsed_likelihood = collapsed.log_density - prior_settings - prior_noise

    per_position = []
    for position in range(len(seq.changepoint_candidates(T, 4))):
        fixed = {"node_0": {"changepoint": {"position": position}}, "obs": {"noise": 0.3, "value": y}}
        result = ppl.infer.laplace(KEY, grammar.space.model, fixed, code, *args, restarts=1, steps=0, newton=2)
        # the explicit evidence includes log p(position) and log p(noise); remove them
        per_position.append(result.log_evidence - jnp.log(1 / 4) - prior_noise)
    explicit = jax.nn.logsumexp(jnp.array(per_position)) - jnp.log(4.0)
    assert jnp.allclose(collapsed_likelihood, explicit, atol=5e-3)


@pytest.mark.slow  # ~70 s: the Laplace program over the Kalman filter compiles once for six structures
def test_nile_changepoint_is_found_and_dated_1898():
    """Nile flow 1871-1970 (statsmodels): a level shift explains it best, and the exact posterior over the
    changepoint's date (at the Laplace mode of the settings) peaks at 1898, with its 95% set in 1896-1899."""
    import statsmodels.api as statsmodels  # in the test extra

    data = statsmodels.datasets.nile.load_pandas().data
    years = data["year"].to_numpy().astype(int)
    y = data["volume"].to_numpy().astype(np.float32)
    y = jnp.asarray((y - y.mean()) / y.std())
    length = y.shape[0]
    u = jnp.linspace(0.0, 1.0, length)
    args = (u, float(years[-1] - years[0]), 1.0 / (length - 1), jnp.ones(length, bool))
    grammar = seq.Grammar((seq.level(), seq.linear_trend(), seq.random_walk(), seq.ar(1)), depth=2,
                          laplace=ppl.infer.Laplace(restarts=2, steps=60, newton=4))
    structures = [("changepoint", "level", "level"), "level", "random_walk", ("+", "level", "ar(1)"), "linear_trend",
                  ("changepoint", "level", "linear_trend")]
    codes = jnp.stack([grammar.space.encode(s) for s in structures])
    results = jax.jit(jax.vmap(lambda c: grammar.score(KEY, None, {"obs": {"value": y}}, c, *args)))(codes)
    scores = results.log_evidence + jax.vmap(grammar.space.log_prior)(codes)
    assert int(jnp.argmax(scores)) == 0, dict(zip(map(str, structures), np.asarray(scores).round(2)))
    mode = jax.tree_util.tree_map(lambda leaf: leaf[0], results.trace).choices
    candidates, probabilities = grammar.changepoint_posterior(mode, codes[0], *args)
    dates = years[candidates]
    assert dates[int(jnp.argmax(probabilities))] == 1898
    ranked = np.argsort(-np.asarray(probabilities))
    mass = np.cumsum(np.asarray(probabilities)[ranked])
    credible = dates[ranked[: int(np.searchsorted(mass, 0.95)) + 1]]
    assert credible.min() >= 1896 and credible.max() <= 1899, credible
