"""The run record: what made an image, one JSON object in one schema for every writer.

The main command, ``jaxnst batch`` and the web page write it into each PNG (a ``jaxnst`` text chunk);
checkpoints keep it as their meta and the main command's trace starts with it; ``jaxnst reproduce``
reads it. It holds ``record`` (the schema's version), ``jaxnst`` (the version that wrote it),
``command`` (one of ``COMMANDS``), the absolute paths of ``content``, ``styles`` and ``output``,
``weights`` (a path, ``"random"``, or ``None`` when unknown) and ``weights_sha256``, ``config`` (the
``Config`` fields marked ``record``), ``device``, the absolute paths of the controls (``CONTROLS``:
coarse styles, masks) the run had, and what the writer adds (``bucket``, ``run``, ``sweep``...).

A record comes from a file, so it is data: ``read_record`` checks it, and a reader takes only the
settings and input paths it names, never a path to write or any other flag.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from jaxnst.config import INIT_CHOICES, Config, parse_value, settings
from jaxnst.errors import JaxnstError

VERSION = 2
# Settings added after a version of the record, with the value that makes an older record's run again.
# Version 2: the middle scales' own step count (until then they took --steps).
ADDED = {2: {"middle_steps": None}}
# The perceptual controls' images, each a list of absolute paths ("none": that style has no mask).
CONTROLS = ("style_coarse", "content_masks", "style_masks")
# What wrote it: the main command (``jaxnst CONTENT STYLE``), ``jaxnst batch``, the web page.
COMMANDS = ("stylize", "batch", "serve")


def make_record(
    cfg: Config,
    *,
    command: str,
    content,
    styles,
    weights: str | None,
    weights_sha256: str,
    device: str,
    output,
    style_coarse=(),
    content_masks=(),
    style_masks=(),
    **extra,
) -> dict:
    """The record of a run of ``cfg`` by ``command`` (see the module docstring); paths are made absolute.
    The controls (``CONTROLS``) are recorded when given."""
    from jaxnst import __version__

    absolute = lambda p: str(Path(p).resolve())  # noqa: E731
    config = json.loads(json.dumps({name: getattr(cfg, name) for name in settings("record")}))
    if config.get("init", INIT_CHOICES[0]) not in INIT_CHOICES:
        config["init"] = absolute(config["init"])
    return {
        "record": VERSION,
        "jaxnst": __version__,
        "command": command,
        "content": absolute(content),
        "styles": [absolute(s) for s in styles],
        "weights": weights if weights in (None, "random") else absolute(weights),
        "weights_sha256": weights_sha256,
        "config": config,
        "device": device,
        "output": absolute(output),
        **{
            name: [p if p == "none" else absolute(p) for p in paths]
            for name, paths in zip(CONTROLS, (style_coarse, content_masks, style_masks), strict=True)
            if paths
        },
        **extra,
    }


def read_record(data: str | dict, where: str) -> dict:
    """The record in ``data`` (its JSON text, or the object), checked; else a ``JaxnstError`` that names
    ``where`` it came from. Records written before they had a version (``record`` 0) are read too:
    ``command`` is then "stylize" unless they say otherwise. Settings the record does not name take
    their defaults, or what an older record meant (``ADDED``); one this jaxnst does not know is an error
    (the run cannot be made again here)."""
    from jaxnst import __version__

    damaged = JaxnstError(f"{where}: its jaxnst record is damaged")
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            raise damaged from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise damaged
    version = data.get("record", 0)
    if version not in range(VERSION + 1) or isinstance(version, bool):
        raise JaxnstError(
            f"{where} has a record of version {version!r} (jaxnst {data.get('jaxnst')}); this jaxnst "
            f"({__version__}) reads versions up to {VERSION}: upgrade jaxnst"
        )
    command = data.get("command", "stylize")
    if command not in COMMANDS:
        raise damaged
    if version or command != "serve":  # the page's records before version 1 held only the config
        styles = data.get("styles") if isinstance(data.get("styles"), list) and data["styles"] else [None]
        texts = [*(data.get(k) for k in ("content", "weights_sha256", "output")), *styles]
        if not all(isinstance(t, str) for t in texts) or not isinstance(data.get("weights"), (str, type(None))):
            raise damaged
    for name in CONTROLS:
        paths = data.get(name, [])
        if not isinstance(paths, list) or not all(isinstance(p, str) and (p == "none" or Path(p).is_absolute())
                                                  for p in paths):  # fmt: skip
            raise JaxnstError(f"{where}: the record's {name} is damaged: it holds {paths!r}, not absolute paths")
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = [k for k in data["config"] if k not in fields]
    if unknown:
        raise JaxnstError(
            f"{where} was made by jaxnst {data.get('jaxnst')} with settings this jaxnst does not have "
            f"({', '.join(map(str, unknown))}): make it again with that version"
        )
    config = {k: v for k, v in data["config"].items() if k in settings("record")}
    for since, added in ADDED.items():
        if version < since:
            config = {**added, **config}
    for name, value in config.items():
        try:
            parse_value(name, setting_text(value))
        except JaxnstError as e:
            raise JaxnstError(f"{where}: its record's {e}") from None
    return {**data, "record": version, "command": command, "config": config}


def setting_text(value) -> str:
    """A JSON value as ``parse_value`` reads it: ``none``, ``true``, comma-separated lists."""
    if isinstance(value, list):
        return ",".join(map(setting_text, value))
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
