import pytest
from dtr_service import sandbox_service


@pytest.fixture
def sandbox_app():
    """The real service (client JWT off, in-memory audit database) deciding as of the sandbox date."""
    return sandbox_service()
