import pytest


@pytest.fixture(autouse=True)
def own_var_dir(settings, tmp_path):
    """Heartbeat files go to this test's directory."""
    settings.VAR_DIR = tmp_path
