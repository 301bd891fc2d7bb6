"""`pytest --nbval-lax notebooks/` runs every notebook at smoke scale into a throwaway results folder.

It lives at the repository root (not in notebooks/) so JupyterLab shows only notebooks there.

The notebooks' parameters cells read SAR_PROFILE and SAR_RESULTS; the kernels nbval starts inherit this
process's environment. Without these defaults a bare pytest call would train the full cpu profile and
overwrite the committed results/. Set either variable yourself to override.
"""
import os
import tempfile

import pytest

os.environ.setdefault("SAR_PROFILE", "smoke")
os.environ.setdefault("SAR_RESULTS", tempfile.mkdtemp(prefix="sar-nbval-"))

# Slow tests: they train, run notebooks or subprocesses, or take over ~2 s on a 2-core CPU
# (`pytest --durations=0`). `make test-fast` deselects them with -m "not slow"; `make test` runs all.
# A whole file, or the listed test functions of a file (every parametrization of each).
SLOW_FILES = {"test_engine.py", "test_experiments.py", "test_launch.py", "test_notebook_cli.py", "test_ownership.py",
              "test_benchmarks.py", "test_real_inputs.py", "test_fashion_mnist.py", "test_make_paper.py"}
SLOW_TESTS = {
    "test_failures.py": {"test_execute_waits_for_the_process_holding_the_run_and_reuses_its_result",
                         "test_a_second_process_is_refused_with_the_holders_pid_and_a_killed_holder_never_blocks",
                         "test_temp_file_of_a_killed_write_is_removed_by_the_next_write_but_live_ones_stay",
                         "test_a_checkpoint_of_the_earlier_format_still_resumes_exactly",
                         "test_papermill_string_parameters_are_parsed_and_errors_render_as_one_line"},
    "test_readme.py": {"test_python_block_runs_at_smoke_scale"},
    "test_export.py": {"test_command_line_writes_both_layouts_into_one_root"},
    "test_models.py": {"test_deit_tiny_default_gives_196_patches_and_gradient_reaches_qkv",
                       "test_capture_equals_explicit_attention_row", "test_deepcopy_for_ema_records_into_its_own_copy",
                       "test_non_square_grid_feeds_the_loss", "test_post_softmax_attention_maps",
                       "test_user_timm_model_can_opt_in", "test_bad_models_have_clear_errors"},
    "test_cnn.py": {"test_the_cnn_arm_trains_with_the_engine_and_leaves_the_mechanism_empty"},
    "test_gpu_check.py": {"test_the_command_line_without_cuda_exits_0_and_writes_nothing"},
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains, runs a notebook or a subprocess, or takes over ~2 s")
    config.addinivalue_line("markers", "browser: drives headless Chromium (make test-browser; make test leaves it out)")


def pytest_collection_modifyitems(config, items):
    modules = {}
    for item in items:
        path = item.path
        if path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
            continue
        name = getattr(item, "originalname", item.name)
        modules[path.name] = getattr(item, "module", None)
        if path.name in SLOW_FILES or name in SLOW_TESTS.get(path.name, ()):
            item.add_marker(pytest.mark.slow)
    # a renamed or deleted test must leave the list, or the list silently stops marking anything
    stale = [f"{f}::{t}" for f, names in SLOW_TESTS.items() if modules.get(f) is not None
             for t in sorted(names) if not hasattr(modules[f], t)]
    if stale:
        raise pytest.UsageError(f"conftest.py SLOW_TESTS names tests that do not exist: {', '.join(stale)}")


class Interrupted(Exception):
    """Raised by the `interrupt_at_epoch` fixture: a training run stopped as if killed."""


@pytest.fixture
def interrupt_at_epoch(monkeypatch):
    """`interrupt_at_epoch(n)`: the next training run stops, once, when epoch n starts (as if killed right
    after epoch n - 1 was checkpointed); returns the exception to expect. The loop asks lambda_schedule
    for each epoch's lambda, so that is where it stops."""
    import sarlib.train.loop as loop

    def arm(epoch: int) -> type[Exception]:
        real, armed = loop.lambda_schedule, [True]

        def stop(e, *args, **kwargs):
            if e == epoch and armed:
                armed.pop()
                raise Interrupted
            return real(e, *args, **kwargs)

        monkeypatch.setattr(loop, "lambda_schedule", stop)
        return Interrupted

    return arm
