from __future__ import annotations

# The batch fixtures (fake_ai, api, make_batch): evaluation's tests judge batches.
from batches.tests.conftest import api, fake_ai, make_batch  # noqa: F401
