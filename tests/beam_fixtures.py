"""Set-up shared by the tests of car_tf.beam."""

import pytest

from car_tf.beam import model_check


@pytest.fixture(scope="module", autouse=True)
def model_check_memo(tmp_path_factory):
    """The launcher's model-check memo (car_tf.beam.model_check) in a fresh folder per test
    module, for this process and the ones it starts, never the user's cache."""
    folder = tmp_path_factory.mktemp("model_check_memo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(model_check.CACHE_ENV, str(folder))
        yield folder
