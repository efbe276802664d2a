"""Feature composition: "A predicts the shape, B the colour, C the motion".

``ppl.features(jar=jar, purple=purple)`` builds one generative function from
*parts*, each of which predicts named feature channels: a part is a model whose
return value is a dict ``{channel: distribution}`` (or such a dict itself, for
a part without latent choices). Channels predicted by one part combine
independently; where several parts predict one channel their densities multiply
(a *product of experts*)::

    p*(f) = prod_i p_i(f) / Z,        Z = integral of prod_i p_i(f) df

``Z`` is the parts' **compatibility** on that channel: parts that agree
("purple jar") have a large ``Z``, contradictory ones ("stationary dancing") a
tiny one. The composite adds ``log Z`` (summed over channels) to its score with
a factor, then samples every channel from ``p*`` at the address named after the
channel. Its score is therefore::

    score = sum of the parts' scores + sum over channels c, parts i predicting c of log p_i(f_c)

so an observed feature is an ordinary constraint (``{"colour": value}``) and its
``generate`` weight is its density under *every* part that predicts it. The
log compatibility is a factor: ``generate`` with no constraints returns
``log_weight = log Z`` (summed over channels), not 0.

Closed forms of ``Z`` and ``p*`` live in a small registry keyed by pairs of
distribution types (``register_product``); built in are Normal x Normal (also
batched, ``.expand``-ed and ``.to_event``-ed, i.e. diagonal multivariate),
MultivariateNormal x MultivariateNormal, Categorical x Categorical and
Bernoulli x Bernoulli. More than two experts fold pairwise; the total ``log Z``
is the sum of the pairwise normalisers.

Example::

    >>> import jax, ppl
    >>> from ppl import dist
    >>> purple = {"colour": dist.Normal(0.8, 0.05)}
    >>> jar = {"colour": dist.Normal(0.5, 0.3), "motion": dist.Normal(0.0, 0.1)}
    >>> float(ppl.log_compatibility(purple, jar)) > -1.0
    True
    >>> trace = ppl.features(purple=purple, jar=jar).simulate(jax.random.key(0))
    >>> sorted(trace.retval)
    ['colour', 'motion']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from numpyro import distributions as dist
from numpyro.distributions import Distribution

from ppl import linalg
from ppl.choices import split_address
from ppl.errors import CompositionError, PPLError
from ppl.interface import GenerativeFunction
from ppl.model import Model, factor, sample
from ppl.validation import describe

__all__ = ["features", "Features", "log_compatibility", "product_of_experts", "register_product"]

ProductRule = Callable[[Distribution, Distribution], tuple[Distribution, jax.Array]]
_PRODUCT_RULES: dict[tuple[type, type], ProductRule] = {}


# ---------------------------------------------------------------------------
# The registry of closed-form products
# ---------------------------------------------------------------------------


def register_product(type_a: type | tuple[type, ...], type_b: type | tuple[type, ...]):
    """Register the closed-form product of two distribution types (a decorator).

    The rule is ``rule(a, b) -> (product, log_normaliser)`` for *leaf*
    distributions ``a`` of ``type_a`` and ``b`` of ``type_b`` (``.expand`` and
    ``.to_event`` wrappers are removed before, and re-applied after, the rule
    runs). ``a`` and ``b`` have equal event shapes and broadcastable batch shapes;
    the rule returns the normalised product ``p*`` and ``log Z`` with their
    broadcast batch shape, where ``p*(x) = a(x) b(x) / Z``. Products commute, so a
    rule for ``(A, B)`` also serves ``(B, A)``. Subclasses match through their
    MRO; registering a pair again replaces its rule. A rule may raise
    ``ppl.errors.CompositionError`` for parameters that cannot multiply.

    Example::

        >>> @register_product(dist.Exponential, dist.Exponential)
        ... def exponential_product(a, b):
        ...     rate = a.rate + b.rate
        ...     return dist.Exponential(rate), jnp.log(a.rate) + jnp.log(b.rate) - jnp.log(rate)
    """
    types_a = type_a if isinstance(type_a, tuple) else (type_a,)
    types_b = type_b if isinstance(type_b, tuple) else (type_b,)
    for t in types_a + types_b:
        if not (isinstance(t, type) and issubclass(t, Distribution)):
            raise TypeError(f"register_product takes distribution classes, got {t!r}.")

    def decorate(rule: ProductRule) -> ProductRule:
        for ta in types_a:
            for tb in types_b:
                _PRODUCT_RULES[(ta, tb)] = rule
        return rule

    return decorate


@register_product(dist.Normal, dist.Normal)
def _normal_product(a: dist.Normal, b: dist.Normal):
    """Precision-weighted mean; ``Z = N(mu_a; mu_b, s_a^2 + s_b^2)``."""
    var_a, var_b = a.scale**2, b.scale**2
    total = var_a + var_b
    loc = (a.loc * var_b + b.loc * var_a) / total
    scale = jnp.sqrt(var_a * var_b / total)
    return dist.Normal(loc, scale), dist.Normal(b.loc, jnp.sqrt(total)).log_prob(a.loc)


@register_product(dist.MultivariateNormal, dist.MultivariateNormal)
def _multivariate_normal_product(a: dist.MultivariateNormal, b: dist.MultivariateNormal):
    """With ``S = C_a + C_b``: ``C* = C_a S^-1 C_b``, ``mu* = C_b S^-1 mu_a + C_a S^-1 mu_b``.

    ``Z = N(mu_a; mu_b, S)``.
    """
    cov_a, cov_b = a.covariance_matrix, b.covariance_matrix
    total = cov_a + cov_b
    cov = cov_a @ linalg.solve(total, cov_b)
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    loc_a, loc_b = a.loc[..., None], b.loc[..., None]
    loc = (cov_b @ linalg.solve(total, loc_a) + cov_a @ linalg.solve(total, loc_b))[..., 0]
    log_z = dist.MultivariateNormal(b.loc, total).log_prob(a.loc)
    return dist.MultivariateNormal(loc, covariance_matrix=cov), log_z


@register_product((dist.CategoricalProbs, dist.CategoricalLogits), (dist.CategoricalProbs, dist.CategoricalLogits))
def _categorical_product(a, b):
    """``p* = p_a p_b / Z``, ``Z = sum_k p_a[k] p_b[k]``, in log space.

    When the two share no category, ``Z = 0`` (``log Z = -inf``) and ``p*`` falls
    back to ``a``, so the score is ``-inf`` rather than NaN.
    """
    if a.logits.shape[-1] != b.logits.shape[-1]:
        raise CompositionError(
            f"the predictions have {a.logits.shape[-1]} and {b.logits.shape[-1]} categories. "
            "Predictions of one Categorical channel must range over the same categories; "
            "give both the same number of probabilities (0 for impossible categories)."
        )
    log_a, log_b = jax.nn.log_softmax(a.logits), jax.nn.log_softmax(b.logits)
    joint = log_a + log_b
    log_z = jax.nn.logsumexp(joint, axis=-1)
    logits = jnp.where(jnp.isfinite(log_z)[..., None], joint - log_z[..., None], log_a)
    logits = jnp.maximum(logits, jnp.finfo(logits.dtype).min)  # -inf (impossible) -> finite, as numpyro requires
    return dist.CategoricalLogits(logits), log_z


@register_product((dist.BernoulliProbs, dist.BernoulliLogits), (dist.BernoulliProbs, dist.BernoulliLogits))
def _bernoulli_product(a, b):
    """Odds multiply: ``logit* = logit_a + logit_b``; ``Z = p_a p_b + (1 - p_a)(1 - p_b)``."""
    log_z = jnp.logaddexp(
        jax.nn.log_sigmoid(a.logits) + jax.nn.log_sigmoid(b.logits),
        jax.nn.log_sigmoid(-a.logits) + jax.nn.log_sigmoid(-b.logits),
    )
    return dist.BernoulliLogits(a.logits + b.logits), log_z


# ---------------------------------------------------------------------------
# Products of experts
# ---------------------------------------------------------------------------


def _leaf(distribution: Distribution) -> tuple[Distribution, int]:
    """Strip ``.expand``/``.to_event`` wrappers: the leaf and how many batch dims became event dims."""
    leaf = distribution
    while isinstance(leaf, (dist.Independent, dist.ExpandedDistribution)):
        leaf = leaf.base_dist
    return leaf, len(distribution.event_shape) - len(leaf.event_shape)


def _find_rule(leaf_a: Distribution, leaf_b: Distribution) -> Callable[[], tuple[Distribution, jax.Array]] | None:
    for type_a in type(leaf_a).__mro__:
        for type_b in type(leaf_b).__mro__:
            if (type_a, type_b) in _PRODUCT_RULES:
                return lambda rule=_PRODUCT_RULES[(type_a, type_b)]: rule(leaf_a, leaf_b)
            if (type_b, type_a) in _PRODUCT_RULES:
                return lambda rule=_PRODUCT_RULES[(type_b, type_a)]: rule(leaf_b, leaf_a)
    return None


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return jnp.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _multiply(a: Distribution, b: Distribution, label_a: str, label_b: str) -> tuple[Distribution, jax.Array]:
    """The product of two predictions of one channel: ``(p*, log Z)`` with ``a``'s batch shape."""
    shape_a = (tuple(a.batch_shape), tuple(a.event_shape))
    shape_b = (tuple(b.batch_shape), tuple(b.event_shape))
    (leaf_a, n_a), (leaf_b, n_b) = _leaf(a), _leaf(b)
    if shape_a != shape_b:
        raise CompositionError(
            f"{label_a} predicts {describe(a)} with batch shape {shape_a[0]} and event shape "
            f"{shape_a[1]}, but {label_b} predicts {describe(b)} with batch shape {shape_b[0]} "
            f"and event shape {shape_b[1]}. Predictions of one channel must describe values of "
            "the same shape; for a vector write each as dist.Normal(loc, scale).to_event(1)."
        )
    rule = _find_rule(leaf_a, leaf_b)
    if rule is None:
        fix = (
            "Predict it with a family that has a closed form (Normal, MultivariateNormal, "
            "Categorical, Bernoulli)"
            if type(leaf_a) is type(leaf_b)
            else "Make both parts predict the channel with the same family"
        )
        raise CompositionError(
            f"{label_a} predicts {describe(a)} and {label_b} predicts {describe(b)}, and ppl "
            f"has no closed-form product of {type(leaf_a).__name__} and {type(leaf_b).__name__}. "
            f"{fix}, or register one: @ppl.register_product({type(leaf_a).__name__}, "
            f"{type(leaf_b).__name__}) on a function (a, b) -> (product, log_normaliser)."
        )
    if n_a != n_b:
        raise CompositionError(
            f"{label_a} predicts {describe(a)} and {label_b} predicts {describe(b)}: the same "
            f"value shape {shape_a[1]}, but built from {type(leaf_a).__name__} events of shape "
            f"{tuple(leaf_a.event_shape)} and {type(leaf_b).__name__} events of shape "
            f"{tuple(leaf_b.event_shape)}. Build both predictions the same way (e.g. both "
            "dist.Normal(loc, scale).to_event(1))."
        )
    try:
        product, log_z = rule()
    except CompositionError as err:
        err.message = f"{label_a} and {label_b} cannot multiply: {err.message}"
        err.args = (err.message,)
        raise
    full_batch = shape_a[0] + shape_a[1][: n_a]
    if not isinstance(product, Distribution) or product.event_shape != leaf_a.event_shape or not _broadcasts(
        jnp.shape(log_z), full_batch
    ):
        raise CompositionError(
            f"the product rule for {type(leaf_a).__name__} and {type(leaf_b).__name__} returned "
            f"({type(product).__name__}, log normaliser of shape {jnp.shape(log_z)}); it must return "
            f"a distribution with event shape {tuple(leaf_a.event_shape)} and a log normaliser "
            f"that broadcasts to the batch shape {full_batch}."
        )
    log_z = jnp.broadcast_to(log_z, full_batch)
    if tuple(product.batch_shape) != full_batch:
        product = product.expand(full_batch)
    if n_a:
        product = product.to_event(n_a)
        log_z = jnp.sum(log_z, axis=tuple(range(-n_a, 0)))
    return product, log_z


def _fold(distributions: list[Distribution], labels: list[str]) -> tuple[Distribution, jax.Array]:
    """Fold experts pairwise, left to right; ``log Z`` is the sum of the pairwise normalisers."""
    product, log_z = distributions[0], jnp.zeros(tuple(distributions[0].batch_shape))
    for i in range(1, len(distributions)):
        label = labels[0] if i == 1 else f"the product of {', '.join(labels[:i])}"
        product, step_log_z = _multiply(product, distributions[i], label, labels[i])
        log_z = log_z + step_log_z
    return product, log_z


def product_of_experts(*distributions: Distribution) -> tuple[Distribution, jax.Array]:
    """The normalised product of densities over one space, and its log normaliser.

    ``product(x) = prod_i d_i(x) / Z`` and ``log_normaliser = log Z`` with the
    distributions' batch shape (``Z`` integrates over the event dims). All
    distributions need the same batch and event shapes and registered pairwise
    closed forms (see :func:`register_product`).

    Example::

        >>> product, log_z = product_of_experts(dist.Normal(0.0, 1.0), dist.Normal(1.0, 1.0))
        >>> float(product.loc), round(float(log_z), 4)     # log N(0; 1, 2)
        (0.5, -1.5155)
    """
    if not distributions:
        raise CompositionError("product_of_experts needs at least one distribution, got none.")
    labels = [f"distribution {i + 1}" for i in range(len(distributions))]
    for label, distribution in zip(labels, distributions):
        if not isinstance(distribution, Distribution):
            raise CompositionError(
                f"product_of_experts takes distributions (ppl.dist.*), but {label} is "
                f"{type(distribution).__name__} {distribution!r}."
            )
    return _fold(list(distributions), labels)


def _check_predictions(predictions: Any, label: str, address: str | None = None) -> Mapping[str, Distribution]:
    """A part's predictions must be a ``{channel: distribution}`` dict with plain channel names."""
    example = "{'colour': dist.Normal(hue, 0.1), 'motion': dist.Normal(0.0, 0.05)}"
    if not isinstance(predictions, Mapping):
        raise CompositionError(
            f"{label} gave {type(predictions).__name__} {predictions!r}, but a features part "
            f"predicts a dict {{channel: distribution}}, e.g. return {example}.",
            address=address,
        )
    for channel, distribution in predictions.items():
        try:
            valid = isinstance(channel, str) and len(split_address(channel)) == 1
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise CompositionError(
                f"{label} predicts a channel named {channel!r}. Channel names are sampled as "
                "addresses, so each must be a non-empty string without '/', e.g. 'colour'.",
                address=address,
            )
        if not isinstance(distribution, Distribution):
            raise CompositionError(
                f"{label} predicts channel '{channel}' as {type(distribution).__name__} "
                f"{distribution!r}; a prediction must be a distribution, e.g. {example}.",
                address=address,
            )
    return predictions


def _combine(predictions: Mapping[str, Mapping[str, Distribution]]) -> tuple[dict[str, Distribution], jax.Array]:
    """Per channel, the product of every part's prediction; and the summed log compatibility."""
    by_channel: dict[str, list[tuple[str, Distribution]]] = {}
    for label, channels in predictions.items():
        for channel, distribution in channels.items():
            by_channel.setdefault(channel, []).append((label, distribution))
    combined, log_compatibility = {}, jnp.zeros(())
    for channel, experts in by_channel.items():
        try:
            product, log_z = _fold([d for _, d in experts], [label for label, _ in experts])
        except PPLError as err:
            err.address = channel if err.address is None else err.address
            raise
        combined[channel] = product
        log_compatibility = log_compatibility + jnp.sum(log_z)
    return combined, log_compatibility


def log_compatibility(*predictions: Mapping[str, Distribution]) -> jax.Array:
    """Summed log normaliser of the product of experts on every shared channel.

    Args:
      *predictions: prediction dicts ``{channel: distribution}`` (what a features
        part returns). Only such dicts are accepted: a model is random, so run it
        first and pass its ``trace.retval``.

    Returns:
      A scalar: ``sum over channels c predicted by two or more dicts of log Z_c``,
      ``Z_c = integral of prod_i p_i(f_c)``; 0 when no channel is shared. For a
      Categorical channel ``Z`` is a probability (the chance that independent
      draws agree); for a continuous one it is a density in the channel's units,
      so compare compatibilities across compositions that share the same channels.

    Example::

        >>> still, dancing = {"motion": dist.Normal(0.0, 0.05)}, {"motion": dist.Normal(2.0, 0.5)}
        >>> float(log_compatibility(still, dancing)) < -7.0
        True
    """
    named = {}
    for i, prediction in enumerate(predictions):
        label = f"prediction {i + 1}"
        if isinstance(prediction, GenerativeFunction):
            raise CompositionError(
                f"log_compatibility takes prediction dicts {{channel: distribution}}, but {label} "
                f"is the generative function '{prediction.name}'. Run it first and pass what it "
                f"returns: {prediction.name}.simulate(key, *args).retval."
            )
        named[label] = _check_predictions(prediction, label)
    return _combine(named)[1]


# ---------------------------------------------------------------------------
# The composite
# ---------------------------------------------------------------------------


class Features(GenerativeFunction):
    """Parts that each predict feature channels, combined as a product of experts.

    Built by :func:`features`. Called with ``*args``, every model part is run
    with those same arguments at the address of its keyword (``"jar/..."``);
    dict parts are fixed predictions and make no choices. Each channel is then
    sampled at the address ``channel`` from the product of its predictions, after
    a factor ``log Z_c`` per shared channel. The return value is
    ``{channel: value}``.

    Weights (``f`` the channel values, ``z`` the parts' latent choices)::

        score = log p(z) + sum_c sum_{i predicts c} log p_i(f_c | z)
              = log p(z) + log compatibility(z) + sum_c log p*_c(f_c | z)
        generate(key, {}).log_weight = log compatibility(z)      (not 0)
    """

    def __init__(self, parts: Mapping[str, GenerativeFunction | Mapping[str, Distribution]]):
        if not parts:
            raise CompositionError(
                "ppl.features needs at least one part, e.g. ppl.features(jar=jar, purple=purple)."
            )
        self.parts = {}
        for name, part in parts.items():
            try:
                split_ok = len(split_address(name)) == 1
            except (TypeError, ValueError):
                split_ok = False
            if not split_ok:
                raise CompositionError(
                    f"part name {name!r} is not a plain address; name parts like keywords, "
                    "e.g. ppl.features(jar=jar)."
                )
            if isinstance(part, Mapping):
                part = dict(_check_predictions(part, f"part '{name}'"))
            elif not isinstance(part, GenerativeFunction):
                raise CompositionError(
                    f"part '{name}' is {type(part).__name__} {part!r}; a features part is a model "
                    "(@ppl.model) that returns {channel: distribution}, or such a dict. Decorate a "
                    "plain function with @ppl.model."
                )
            self.parts[name] = part
        self.name = f"features({', '.join(self.parts)})"
        self._model = Model(self._body, name=self.name)

    def _body(self, *args):
        predictions = {}
        for name, part in self.parts.items():
            if isinstance(part, GenerativeFunction):
                predicted = sample(name, part, *args)
                predictions[name] = _check_predictions(predicted, f"part '{name}' ({part.name})", name)
            else:
                predictions[name] = part
        for name, channels in predictions.items():
            for channel in channels:
                if channel in self.parts:
                    raise CompositionError(
                        f"part '{name}' predicts a channel '{channel}', which is also the name "
                        f"of a part. Channels are sampled at their own names and parts' choices "
                        f"live under theirs, so the two cannot share '{channel}'. Name the part "
                        f"after what it is, e.g. ppl.features(jar=..., purple=...) rather than "
                        f"ppl.features(shape=..., colour=...).",
                        address=channel,
                    )
        combined, log_compat = _combine({f"part '{name}'": p for name, p in predictions.items()})
        factor(log_compat)
        return {channel: sample(channel, distribution) for channel, distribution in combined.items()}

    def body(self, context, *args):
        return context.call(None, self._model, *args)

    def __repr__(self) -> str:
        return f"<ppl.{self.name}>"


def features(**parts: GenerativeFunction | Mapping[str, Distribution]) -> Features:
    """Compose parts that predict feature channels (a product of experts per channel).

    Args:
      **parts: ``name=part``. A part is a generative function (e.g. a
        ``@ppl.model``) returning ``{channel: distribution}``, run at ``"name/..."``
        with the composite's arguments, or a fixed ``{channel: distribution}``
        dict. A channel name must differ from every part name.

    Returns:
      A :class:`Features` generative function whose return value is
      ``{channel: value}``. Its score includes the log compatibility of the parts
      (see :func:`log_compatibility`), so even unconstrained ``generate`` has
      ``log_weight = log compatibility``; observed channels are constrained by
      their names: ``composite.generate(key, {"colour": c})``.

    Example::

        >>> purple = {"colour": dist.Normal(0.8, 0.05)}
        >>> jar = {"colour": dist.Normal(0.5, 0.3), "motion": dist.Normal(0.0, 0.1)}
        >>> trace, log_weight = features(purple=purple, jar=jar).generate(jax.random.key(0), {})
        >>> bool(jnp.allclose(log_weight, log_compatibility(purple, jar)))
        True
    """
    return Features(parts)
