"""runner: carries out a task card with an encoder card (cards -> manifest -> embeddings -> metrics -> result).

Importing the package sets the thread environment (runner.runtime.threads says why), so Python callers of
`runner.evaluate.evaluate` get passive OpenMP waiting too, not only the `runner` command. It is in effect only if no
OpenMP runtime is loaded yet (import `runner` before torch, scikit-learn or LightGBM); otherwise a warning says so.
"""

from runner.runtime.threads import set_thread_environment_at_import

set_thread_environment_at_import()
