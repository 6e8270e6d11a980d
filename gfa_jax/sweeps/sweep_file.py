"""Sweep files: ``configs/sweeps/<name>.py`` with ``get_sweep(arg=None)`` returning the runs.

A run is a config file (relative to the configs directory, the parent of the sweep file's own
directory unless the sweep file sets ``CONFIG_DIR``, relative to itself), an optional config arg
(``file.py:arg``) and overrides ``{"dotted.key": value}``, as ``--config.dotted.key=value`` on the
command line of ``python -m gfa_jax.main``. ``get_sweep`` returns :class:`Run` objects or plain
dicts with the same keys. Every path is resolved to an absolute one here, never against the cwd.

Every run gets a stable name, hence workdir: readable (config, arg, the overrides' last key
components and values) plus a hash of everything that defines the run, so two runs never share a
workdir and launching the same sweep again finds the same workdirs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import pathlib
import re
from typing import Any, Mapping, Sequence

from absl import flags
from ml_collections import config_flags

from gfa_jax import config as gfa_config

NAME_LIMIT = 100  # characters of the readable part of a run's name
VALUE_LIMIT = 24  # characters of one override value in it


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: ``python -m gfa_jax.main --config <config>[:<arg>] --config.<k>=<v>...``."""

    config: str
    arg: str | None = None
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def strategy_runs(arg: str | None, strategies: Sequence[str], config_pattern: str,
                  cpu_overrides: Mapping[str, Any]) -> list[Run]:
    """A run per strategy for a sweep file's ``get_sweep(arg)``.

    ``arg``: comma-separated; ``cpu`` adds ``cpu_overrides`` to every run, strategy names keep only
    those (all when none is named); ``config_pattern`` names the config file, e.g. ``"cifar_{}.py"``.
    """
    options = [a for a in (arg or "").split(",") if a]
    unknown = set(options) - {"cpu", *strategies}
    if unknown:
        raise ValueError(f"Unknown {sorted(unknown)}; use cpu and any of {tuple(strategies)}.")
    chosen = [s for s in strategies if s in options] or list(strategies)
    overrides = dict(cpu_overrides) if "cpu" in options else {}
    return [Run(config_pattern.format(strategy), overrides=overrides) for strategy in chosen]


@dataclasses.dataclass(frozen=True)
class ResolvedRun:
    """A run with its config file as an absolute path, its overrides as flag text, and its name."""

    name: str
    config_file: pathlib.Path
    config_rel: str
    arg: str | None
    overrides: tuple[tuple[str, str], ...]

    def config_argv(self) -> list[str]:
        """The ``--config`` flags that build this run's config (as ``gfa_jax.main`` takes them)."""
        spec = f"{self.config_file}:{self.arg}" if self.arg else str(self.config_file)
        return [f"--config={spec}"] + [f"--config.{key}={value}" for key, value in self.overrides]


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    file: pathlib.Path
    arg: str | None
    runs: tuple[ResolvedRun, ...]


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"path.py:arg"`` -> ``("path.py", "arg")``; ``"path.py"`` -> ``("path.py", None)``."""
    path, sep, arg = spec.rpartition(":")
    if sep and path.endswith(".py") and "/" not in arg:
        return path, arg or None
    return spec, None


def flag_text(value: Any) -> str:
    """An override value as the text of ``--config.key=<text>`` (what config_flags parses back)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        items = ", ".join(repr(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return repr(value)


def _slug(text: str) -> str:
    if "/" in text:  # paths: their last component says enough; the hash holds the rest
        text = pathlib.PurePath(text.rstrip("/")).name
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")


def run_name(config_rel: str, arg: str | None, overrides: Sequence[tuple[str, str]],
             shown: Sequence[str] | None = None) -> str:
    """``<config stem>[_<arg>][_<key>=<value>...]-<hash8>``: stable across machines and launches.

    The hash covers the config path relative to the configs directory, the arg and every override
    (their order does not matter); the readable part shows the overrides whose keys are in
    ``shown`` (default all), by their last key component.
    """
    identity = json.dumps({"config": config_rel, "arg": arg, "overrides": sorted(overrides)}, sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    parts = [pathlib.PurePath(config_rel).with_suffix("").as_posix().replace("/", "_")]
    if arg:
        parts.append(_slug(arg))
    parts += [f"{key.rsplit('.', 1)[-1]}={_slug(value)[:VALUE_LIMIT]}" for key, value in sorted(overrides)
              if shown is None or key in shown]
    readable = "_".join(p for p in parts if p)
    if len(readable) > NAME_LIMIT:
        readable = readable[:NAME_LIMIT].rsplit("_", 1)[0]
    return f"{readable}-{digest}"


def _as_run(item: Run | Mapping[str, Any]) -> Run:
    if isinstance(item, Run):
        return item
    unknown = set(item) - {"config", "arg", "overrides"}
    if unknown or "config" not in item:
        raise ValueError(f"A sweep's run is a Run or a dict with keys config, arg, overrides; got {dict(item)}.")
    return Run(item["config"], item.get("arg"), dict(item.get("overrides") or {}))


def resolve_run(item: Run | Mapping[str, Any], config_dir: pathlib.Path,
                extra_overrides: Mapping[str, Any] | None = None) -> ResolvedRun:
    """A sweep file's run with its config file made absolute and ``extra_overrides`` (the
    launcher's ``--set``, applied to every run) added after its own: in its hash, not in the
    readable part of its name."""
    run = _as_run(item)
    config_file = (config_dir / run.config).resolve()
    if not config_file.is_file():
        raise FileNotFoundError(f"Config file {run.config!r} of a sweep run: no {config_file}.")
    overrides = {**run.overrides, **(extra_overrides or {})}
    pairs = tuple((key, flag_text(value)) for key, value in overrides.items())
    config_rel = pathlib.PurePath(run.config).as_posix()
    name = run_name(config_rel, run.arg, pairs, shown=tuple(run.overrides))
    return ResolvedRun(name, config_file, config_rel, run.arg, pairs)


def load_module(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"gfa_jax_sweep_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sweep(spec: str, extra_overrides: Mapping[str, Any] | None = None,
               base_dir: pathlib.Path | None = None) -> Sweep:
    """Load ``path/to/sweep.py[:arg]`` (a relative path is taken from ``base_dir``, default the cwd:
    the one place where the command line's own path is read) and resolve its runs.

    The sweep's name is the file's stem, with ``_<arg>`` when an arg is given.
    """
    path_text, arg = split_spec(spec)
    path = (pathlib.Path(base_dir or pathlib.Path.cwd()) / pathlib.Path(path_text).expanduser()).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"No sweep file {path}.")
    module = load_module(path)
    if not hasattr(module, "get_sweep"):
        raise ValueError(f"{path} defines no get_sweep(arg=None).")
    items = module.get_sweep(arg) if arg is not None else module.get_sweep()
    config_dir = (path.parent / getattr(module, "CONFIG_DIR", "..")).resolve()
    runs = tuple(resolve_run(item, config_dir, extra_overrides) for item in items)
    names = [run.name for run in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: several runs are the same run: {duplicates}.")
    name = path.stem + (f"_{_slug(arg)}" if arg else "")
    return Sweep(name, path, arg, runs)


def build_config(run: ResolvedRun):
    """The run's config, built by ml_collections' config_flags from the same flags ``gfa_jax.main``
    takes (so an override means here what it means there), locked and validated."""
    argv = ["gfa_jax.launch"] + run.config_argv()
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file", flag_values=flag_values, lock_config=True,
                                    sys_argv=argv)
    try:
        flag_values(argv)
    except (AttributeError, KeyError, flags.Error, ValueError, TypeError) as e:
        raise ValueError(f"Run {run.name}: cannot build its config from {' '.join(argv[1:])}: {e!r}") from e
    config = flag_values["config"].value
    gfa_config.validate(config)
    return config


def parse_assignments(texts: Sequence[str]) -> dict[str, str]:
    """``["data.data_dir=/x", "num_epochs=1"]`` -> ``{"data.data_dir": "/x", "num_epochs": "1"}``."""
    result = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"Expected key=value, got {text!r}.")
        result[key.strip().removeprefix("config.")] = value
    return result
