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


@pytest.fixture(autouse=True)
def _no_torch_warning_from_the_cli():
    """CI installs torch for the interop tests, which import it into the test process; from then
    on every in-process CLI call whose Numba pool has started already would print the fast
    layer's one-line "PyTorch is imported" warning (minidistil.fast.torch_warning, tested on its
    own) before the line a test checks."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTorch is imported in this process")
        yield
