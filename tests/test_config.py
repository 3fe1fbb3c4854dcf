"""``Config``'s field metadata is the one list of settings: every other list is generated from it."""

import dataclasses

import pytest

from jaxnst.config import BATCH_KINDS, Config, flag, parse_value, setting, settings, validate
from jaxnst.errors import JaxnstError


def test_every_field_says_what_it_is_once():
    for f in dataclasses.fields(Config):
        assert f.metadata["help"] and f.metadata["batch"] in BATCH_KINDS, f.name
        assert not f.metadata["sweep"] or f.metadata["batch"] == "item", f"{f.name}: only per-item fields sweep"
    with pytest.raises(ValueError, match="only 'item' sweeps"):
        setting("a program-wide sweep", default=0, batch="program", sweep=True)


def test_the_lists_of_fields_are_generated():
    """The public names that once were hand-kept lists (and drifted) are the generator's output."""
    import jaxnst.batch
    from jaxnst.cli.batch import SWEEPABLE
    from jaxnst.web.runs import SETTINGS, SWEEPS

    assert jaxnst.batch.PER_ITEM == settings("batch", "item")
    assert jaxnst.batch._LOADING == settings("batch", "load")
    assert SWEEPABLE == settings("sweep") and set(SWEEPABLE) <= set(jaxnst.batch.PER_ITEM)
    assert {"ema", "initial_steps", "init"} <= set(SWEEPABLE)  # the README's sweeps that were refused
    assert SETTINGS == settings("page") and SWEEPS == tuple(n for n in SETTINGS if n in SWEEPABLE)


def test_a_new_field_reaches_the_flags_the_sweeps_and_the_page():
    """A throwaway field added to a copy of Config, with its own flag: every list picks it up."""
    from jaxnst.cli.common import Parser, add_config_flags
    from jaxnst.web.runs import settings_html

    zoom = setting("how far to zoom in", default=1.5, sweep=True, page="Zoom", flag="--zoom")
    extra = dataclasses.make_dataclass("Extra", [("zoom_level", float, zoom)], bases=(Config,), frozen=True)
    assert "zoom_level" not in settings("sweep")  # Config itself is untouched
    assert "zoom_level" in settings("batch", "item", config=extra)
    assert settings("sweep", config=extra)[-1] == settings("page", config=extra)[-1] == "zoom_level"
    p = Parser(prog="test")
    add_config_flags(p, config=extra)
    assert p.parse_args(["--zoom", "2"]).zoom_level == 2.0 and p.parse_args([]).zoom_level == 1.5
    assert "how far to zoom in (default: 1.5)" in p.format_help()
    assert flag("zoom_level", extra) == "--zoom" and parse_value("zoom_level", "3", extra) == 3.0
    page = settings_html(extra)
    assert '<label>Zoom <input name="zoom_level" id="zoom_level" title="how far to zoom in" value="1.5">' in page
    assert '<option value="zoom_level">zoom level</option>' in page  # the page can sweep it
    assert 'name="zoom_level"' not in settings_html()
    with pytest.raises(JaxnstError, match="zoom_level nan must be a finite number"):  # validate checks every number
        validate(extra(zoom_level=float("nan")))


@pytest.mark.parametrize(
    "name, text, value",
    [
        ("steps", "12", 12),
        ("lr", "1e-3", 1e-3),
        ("initial_steps", "None", None),
        ("min_size", "64", 64),
        ("style_statistic", "gram", "gram"),
        ("style_layers", "relu1_1, relu2_1", ("relu1_1", "relu2_1")),
        ("style_layer_weights", "1,0.5", (1.0, 0.5)),
        ("remat", "true", True),
        ("init", "noise", "noise"),
    ],
)
def test_parse_value_reads_every_kind_of_field(name, text, value):
    assert parse_value(name, text) == value


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("size", "abc", "size 'abc' is not a whole number"),
        ("lr", "x", "lr 'x' is not a number"),
        ("style_statistic", "cov", "style_statistic 'cov' is not one of gram, w2, mean_std"),
        ("content_layer_weights", "1,x", "content_layer_weights 'x' is not a number"),
    ],
)
def test_parse_value_names_the_field(name, text, message):
    with pytest.raises(JaxnstError, match="^" + message.replace("(", r"\(")) as e:
        parse_value(name, text)
    assert e.value.field == name


def test_losspec_network_and_features_take_config_defaults(vgg19):
    """Built directly, they are what ``Config()`` gives (``ops='auto'`` without a run: 'fast', as
    ``LossSpec.from_config`` without a pixel count); once ``LossSpec()`` matched Gram, not W2."""
    import inspect

    import jax
    import jax.numpy as jnp

    from jaxnst.optimize import LossSpec
    from jaxnst.vgg import Network, features

    spec = LossSpec.from_config(Config())
    assert LossSpec() == dataclasses.replace(spec, network=Network()) and LossSpec().style_statistic == "w2"
    assert Network() == Network(Config.pooling, Config.precision, Config.remat, Config.ops)
    sig = inspect.signature(features).parameters
    assert {k: sig[k].default for k in ("pooling", "precision", "remat", "ops")} == dataclasses.asdict(Network())
    x = jnp.full((1, 16, 16, 3), 0.5)
    jaxpr = lambda net: str(jax.make_jaxpr(jax.grad(lambda a: net.features(vgg19, a, ["relu2_1"])["relu2_1"].sum()))(x))
    assert jaxpr(Network()) == jaxpr(spec.network) == jaxpr(Network(ops="fast"))
