"""What a user sees on the console: progress bars, one line per epoch, and warnings.

Our modules log through named ``gfa_jax.*`` loggers (``logging.getLogger(__name__)``). The command
lines call :func:`configure_logging` once: unless ``--verbosity`` / ``-v`` asks for more, absl (and
Orbax, which logs through absl) and our loggers show warnings and errors only, so the console holds
the progress bar and the per-epoch lines rather than hundreds of checkpointing messages.
"""
from __future__ import annotations

import logging
import sys
from typing import Iterable, TypeVar

import tqdm
from absl import app, flags
from absl import logging as absl_logging

T = TypeVar("T")

# Libraries whose INFO messages flood a run's console (Orbax logs each save and restore step).
_CHATTY_LOGGERS = ("absl", "orbax", "jax", "tensorflow", "tensorflow_datasets", "etils", "tensorstore")


def configure_logging() -> None:
    """WARNING for absl, Orbax and ``gfa_jax.*`` unless ``--verbosity`` was given on the command line."""
    asked = flags.FLAGS.is_parsed() and "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present
    if asked:  # absl verbosity: -1 warnings, 0 info, 1 debug; ours follows it
        verbosity = absl_logging.get_verbosity()
        level = logging.DEBUG if verbosity >= 1 else logging.INFO if verbosity == 0 else logging.WARNING
        logging.getLogger("gfa_jax").setLevel(level)
        return
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in _CHATTY_LOGGERS + ("gfa_jax",):
        logging.getLogger(name).setLevel(logging.WARNING)


def progress_bar(*, total: int, initial: int = 0, desc: str, unit: str = "step", disable: bool = False) -> tqdm.tqdm:
    """A progress bar; ``disable``: shows nothing (``write`` still prints: tqdm's is a class method)."""
    return tqdm.tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, mininterval=1.0,
                     disable=disable)


def progress(items: Iterable[T], *, desc: str, unit: str = "it", total: int | None = None) -> Iterable[T]:
    """``items`` with a progress bar (for long steps that have nothing else to show)."""
    return tqdm.tqdm(items, desc=desc, unit=unit, total=total, dynamic_ncols=True, mininterval=1.0, leave=False)


_HELP_ARGUMENTS = ("-h", "-?", "--help", "--helpshort")


def run_app(main, *, required_flags: tuple[str, ...] = ()) -> None:
    """``absl.app.run(main)``, except that asking for help prints it and exits 0 (absl exits 1).

    Scripts and CI steps treat a non-zero ``--help`` as a broken command line.
    """
    if any(argument in _HELP_ARGUMENTS for argument in sys.argv[1:]):
        flags.FLAGS.mark_as_parsed()  # no validation: required flags are absent when help is asked
        app.usage(shorthelp=True, writeto_stdout=True)
        print("\nTry --helpfull to get a list of all flags.")
        sys.exit(0)
    flags.mark_flags_as_required(list(required_flags))
    app.run(main)
