"""Shared test settings."""
import pytest


@pytest.fixture(autouse=True)
def _fast_layer_off_after_each_test():
    """The CLI switches the opt-in speed layer on in-process (minidistil.fast.enable); switch it
    off after every test so that the next one tests the plain path it means to."""
    yield
    from minidistil import fast
    if fast.enabled():
        fast.disable()
