"""Shared settings and example counting for the fuzz tests (test_fuzz_*.py).

Every property test runs a fixed, derandomised set of examples so that CI is reproducible and its time is
bounded. For a longer, randomised fuzzing session set ``HEADPOSE_FUZZ_SCALE`` (multiplies every
``max_examples``) and ``HEADPOSE_FUZZ_RANDOM=1`` (fresh random examples each run), e.g.
``HEADPOSE_FUZZ_SCALE=20 HEADPOSE_FUZZ_RANDOM=1 python -m pytest -q test/test_fuzz_images.py``.

Each test counts the examples it actually tried and the outcome of each (``decoded``, ``ImageDecodeError``,
...); the counts are printed at the end of the module (``pytest -rA`` or ``-s`` shows them) and written,
when ``HEADPOSE_FUZZ_COUNTS`` names a file, as JSON lines, for the README's Reliability section.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter, defaultdict
from typing import Callable

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("HEADPOSE_FUZZ_SCALE", "1") or 1))
RANDOM = os.environ.get("HEADPOSE_FUZZ_RANDOM", "") not in ("", "0")

#: test name -> outcome -> number of examples
COUNTS: dict[str, Counter] = defaultdict(Counter)


def fuzz_settings(max_examples: int, **extra) -> settings:
    """Hypothesis settings for one property: ``max_examples`` x HEADPOSE_FUZZ_SCALE, no deadline (first
    calls import OpenCV or TensorFlow), no example database (nothing written into the repository)."""
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        **extra,
    )


def count(test: str, outcome: str) -> None:
    """Record one example of ``test`` that ended in ``outcome`` (also a hypothesis ``event``)."""
    from hypothesis import event

    COUNTS[test][outcome] += 1
    event(outcome)


def run_counted(test: str, prop: Callable[[], None]) -> Counter:
    """Run the @given property ``prop`` and return the outcomes of the examples it tried in this call."""
    before = Counter(COUNTS[test])
    prop()
    tried = Counter(COUNTS[test])
    tried.subtract(before)
    return +tried


def report_lines(module: str) -> list[str]:
    lines = []
    for test, outcomes in sorted(COUNTS.items()):
        if not test.startswith(module + "::"):
            continue
        total = sum(outcomes.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1]))
        unit = "records" if test.endswith("_records") else "examples"
        lines.append(f"{test}: {total} {unit} ({detail})")
    return lines


def write_counts(module: str) -> None:
    """Append this module's counts to the HEADPOSE_FUZZ_COUNTS file (JSON lines), when it is set."""
    path = os.environ.get("HEADPOSE_FUZZ_COUNTS")
    if not path:
        return
    with open(path, "a") as handle:
        for test, outcomes in sorted(COUNTS.items()):
            if test.startswith(module + "::"):
                handle.write(json.dumps({"test": test, "examples": sum(outcomes.values()),
                                         "outcomes": dict(outcomes)}) + "\n")


def make_report_fixture(module: str):
    """A module-scoped autouse fixture that prints (and optionally writes) ``module``'s example counts."""
    import pytest

    @pytest.fixture(scope="module", autouse=True)
    def _fuzz_counts_report(request):
        yield
        lines = report_lines(module)
        reporter = request.config.pluginmanager.getplugin("terminalreporter")
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if reporter is not None and lines:
            with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
                reporter.write_line("")
                for line in lines:
                    reporter.write_line(f"[fuzz] {line}")
        write_counts(module)

    return _fuzz_counts_report
