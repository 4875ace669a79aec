"""What one browser session may change for every other session: the operator decides, and the demo never changes.

A catalog's tuned configuration and its active model are shared: every visitor's recommendations come from
them. The studio has no login, so by default a browser session may search and train, but its search result
stays in its own session and its trained model is stored without being activated (a candidate the operator
can activate with `python -m core models activate ID`). An operator who trusts every visitor sets
$PRISM_ALLOW_BROWSER_ACTIVATION=1 (as $PRISM_ALLOW_BROWSER_OVERWRITE allows replacing catalogs): the studio
may then store tuned configurations, activate models and restore earlier ones, for every catalog but the
demo, which is the studio's own and changes only from the command line. The command line is the operator's
and may always.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

SETTING = "PRISM_ALLOW_BROWSER_ACTIVATION"
DEMO_CATALOG = "demo"


@dataclass(frozen=True)
class SharedChange:
    """Whether a browser session may change what every session sees on one catalog, and why not."""

    allowed: bool
    reason: str = ""  # why not, with how to allow it (empty when allowed)


def browser_may_change(catalog: str) -> SharedChange:
    """May a browser session store a tuned configuration, or change or restore the active model, of `catalog`?"""
    if catalog.strip().lower() == DEMO_CATALOG:
        return SharedChange(False, "the demo catalog is shared by every visitor and changes only from the "
                                   "command line (`python -m core tune`, `train`, `models activate`)")
    if os.environ.get(SETTING, "").strip().lower() not in ("1", "true", "yes", "on"):
        return SharedChange(False, "this studio keeps every catalog's tuned configuration and active model as the "
                                   f"operator set them (an operator can allow changes from the browser with the "
                                   f"setting {SETTING}=1)")
    return SharedChange(True)
