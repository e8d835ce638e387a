"""End-to-end tests share the integration tests' broker fixtures."""

from __future__ import annotations

import pytest

from tests.integration.conftest import admin, java, producer

pytestmark = pytest.mark.e2e
__all__ = ["admin", "java", "producer"]
