"""``python -m rdsiamkit``: the same command line as ``rdsiamkit``."""

from __future__ import annotations

from rdsiamkit.cli import main

raise SystemExit(main())
