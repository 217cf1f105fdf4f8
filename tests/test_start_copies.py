"""Workshop verdicts cannot pass by mistake: every test a step introduces fails on its untouched start copy
(`tutorial start NN`), but those marked already_holds, which pass there (CONTRIBUTING.md). Each half of the steps
is checked in one pytest session (one start-up, not one per step); on two xdist workers the halves run at once."""
import contextlib
import io

import pytest

from tutorial import checking, cli
from tutorial.steps import reference_steps

TEST = "test_every_test_a_step_introduces_fails_on_its_start_copy"
STEPS = reference_steps()
HALF = {step: f"start_copies_{2 * i // len(STEPS)}" for i, step in enumerate(STEPS)}  # the first half, the second


@pytest.fixture(scope="session")
def start_copies(request, tmp_path_factory):
    """start_copies(half): {step: CheckResult} of the introduced tests on that half's start copies, checked at once."""
    workspace, checked = tmp_path_factory.mktemp("start-copies"), {}

    def check(half):
        if half not in checked:
            # The run's cases (an xdist worker holds every collected one): this half's, which its group keeps here.
            cases = [item.callspec.params["step"] for item in request.session.items
                     if getattr(item, "originalname", "") == TEST]
            steps = sorted({step for step in cases if HALF[step] == half})
            for step in steps:
                with contextlib.redirect_stdout(io.StringIO()):
                    assert cli.main(["start", step[4:6], "--workspace", str(workspace)]) == 0
            checked[half] = checking.run_checks([checking.Check(workspace, steps, introduced_only=True)])[0]
        if isinstance(checked[half], Exception):  # a start copy that does not import
            raise checked[half]
        return checked[half]

    return check


# A property of the tests and the steps, the same on every machine: a learner's run checks the finished step's
# start copy (the workshop tools work here); CI, and --all-steps, every step's (tests/conftest.py).
@pytest.mark.finished_step_for_learners
@pytest.mark.schedule_first  # one checking process of several seconds per half
@pytest.mark.parametrize("step", [pytest.param(s, marks=pytest.mark.xdist_group(HALF[s])) for s in STEPS])
def test_every_test_a_step_introduces_fails_on_its_start_copy(step, start_copies):
    cases = [case for case in start_copies(HALF[step])[step].tests if case["introduced"]]
    assert cases, f"{step} introduces no test"
    false_passes = [c["nodeid"] for c in cases if not c["already_holds"] and c["outcome"] == "passed"]
    assert not false_passes, f"pass on the untouched start copy of {step} (check nothing new): {false_passes}"
    # with what each found: under CI=true a missing requirement (Redis, say) fails a case too, and says so
    not_holding = [f"{c['nodeid']}: {c.get('found')}" for c in cases if c["already_holds"] and c["outcome"] == "failed"]
    assert not not_holding, f"marked already_holds, yet fail on the start copy of {step}: {not_holding}"
    assert any(c["outcome"] == "failed" for c in cases), f"no test of {step} ran on its start copy"
