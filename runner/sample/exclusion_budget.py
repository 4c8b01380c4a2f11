"""The exclusion budget: how many sampled images a run may lose after sampling before its numbers mean less.

Sampling replaces a failing file by the next candidate, so its counts stay exact; an image that goes missing or fails
to decode *after* sampling (at embedding time) is simply not scored. A few such losses are normal (a corrupt file the
header check let through); many mean the run is not on the data its manifest describes (a wrong --data-root, a
half-synced copy). The task card's `sampling.max_excluded_fraction` (default in tasks/_defaults.yaml) bounds them:
`runner eval` fails (exit 1) past it, and `runner submit` refuses a result over it.
"""

from __future__ import annotations

from registry.errors import RegistryError

EMBEDDING_PREFIX = "at embedding: "  # runner.evaluate prefixes the exclusions it made after sampling


class OverBudgetError(RegistryError):
    """A run lost more images after sampling than its task card allows (exit 1); str() has a table of reasons."""

    exit_code = 1


def check_budget(task_id: str, n_images: int, exclusions: list[dict], max_fraction: float) -> None:
    """Raise OverBudgetError (with one line per reason) when `exclusions` made after sampling exceed the budget."""
    over = budget_problem(n_images, exclusions, max_fraction, table=True)
    if over:
        raise OverBudgetError(f"{task_id}: {over}")


def max_excluded_fraction(task_data: dict) -> float:
    """The card's `sampling.max_excluded_fraction` (the defaults card always sets it; 0 if a card has none)."""
    return float((task_data.get("sampling") or {}).get("max_excluded_fraction", 0.0))


def reason_table(exclusions: list[dict]) -> list[tuple[str, int, str]]:
    """(reason, count, an example path) per reason, most frequent first."""
    table: dict[str, list] = {}
    for entry in exclusions:
        reason = str(entry.get("reason", "")).removeprefix(EMBEDDING_PREFIX)
        table.setdefault(reason, [0, str(entry.get("path", ""))])[0] += 1
    return sorted(((r, n, p) for r, (n, p) in table.items()), key=lambda t: (-t[1], t[0]))


def budget_problem(n_images: int, exclusions: list[dict], max_fraction: float, table: bool = False) -> str | None:
    """Why `exclusions` made after sampling are over the budget of `n_images`; None when within it.

    table=True adds one line per reason (count, reason, an example path) after the one-line summary.
    """
    if n_images <= 0 or len(exclusions) <= max_fraction * n_images:
        return None
    rows = reason_table(exclusions)
    summary = (f"{len(exclusions)} of {n_images} images ({len(exclusions) / n_images:.1%}) were excluded after "
               f"sampling, more than the task card's sampling.max_excluded_fraction {max_fraction:g} ("
               + ", ".join(f"{n} {r}" for r, n, _ in rows) + ")")
    if not table:
        return summary
    width = max(len(r) for r, _, _ in rows)
    lines = [f"  {n:>7}  {r:<{width}}  e.g. {p}" for r, n, p in rows]
    return "\n".join([summary + ":", f"  {'images':>7}  {'reason':<{width}}  example", *lines])
