"""Workshop verdicts cannot pass by mistake: on a step's untouched start copy — what `tutorial start NN` makes,
the previous step copied under the new name (a skeleton for step 01) — every test the step introduces fails.

"Introduced" means: the tests that check the step and are not inherited from an earlier one through
`@pytest.mark.since` (tutorial/check_plugin.py). A test for a behaviour the previous step already has is
marked `@pytest.mark.already_holds`: it is left out of the first rule and must pass on the start copy
instead. Parametrized over the reference steps, so that a new step is covered as soon as it exists.
"""
import contextlib
import io

import pytest

from tutorial import checking, cli
from tutorial.steps import reference_steps


# A property of the tests and the steps, the same on every machine: a learner's run checks the finished step's
# start copy (the workshop tools work here); CI, and --all-steps, every step's (tests/conftest.py).
@pytest.mark.finished_step_for_learners
@pytest.mark.parametrize("step", reference_steps())
def test_every_test_a_step_introduces_fails_on_its_start_copy(step, tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["start", step[4:6], "--workspace", str(tmp_path)]) == 0
    checking.check_imports(tmp_path, step)
    result = checking.run_check(step, tmp_path, introduced_only=True)
    cases = [case for case in result.tests if case["introduced"]]
    assert cases, f"{step} introduces no test"
    false_passes = [c["nodeid"] for c in cases if not c["already_holds"] and c["outcome"] == "passed"]
    assert not false_passes, f"pass on the untouched start copy of {step} (check nothing new): {false_passes}"
    not_holding = [c["nodeid"] for c in cases if c["already_holds"] and c["outcome"] == "failed"]
    assert not not_holding, f"marked already_holds, yet fail on the start copy of {step}: {not_holding}"
    assert any(c["outcome"] == "failed" for c in cases), f"no test of {step} ran on its start copy"
