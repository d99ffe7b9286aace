"""docs/RELIABILITY.md's table is what the CLI really prints for each bad input: regenerated here
and compared, so CI fails when an error message or a case changes without the docs."""

import pytest

import medseg_nas.testing.reliability as reliability


@pytest.fixture(scope="module")
def rt():
    return reliability


@pytest.fixture(scope="module")
def generated(rt):
    return rt.generate()


def test_every_case_ends_in_one_clear_error(generated):
    _, outcomes = generated
    for case, o in outcomes:
        assert o.rc != 0 and not o.traceback, (case.name, o.rc, o.stderr[-1500:])
        assert "error: " in o.seen(), (case.name, o.seen())


def test_docs_table_is_current(rt, generated):
    table, _ = generated
    doc = rt.DOC.read_text()
    assert rt.splice(doc, table) == doc, (
        "docs/RELIABILITY.md is out of date: run `python scripts/reliability_table.py` and commit it")


def test_case_names_unique_and_grouped(rt):
    names = [c.name for c in rt.CASES]
    assert len(names) == len(set(names))
    groups = [c.group for c in rt.CASES]
    # each group's cases are contiguous, so the docs show one table per group
    assert all(groups.index(g) + groups.count(g) - 1 == max(i for i, x in enumerate(groups) if x == g) for g in groups)


@pytest.mark.parametrize("name", ["config_latin1", "onnx_not_installed", "cli_bad_stage", "search_busy"])
def test_in_process_run_is_what_a_user_sees(rt, name, tmp_path):
    # the table runs cases in-process for speed; a real `medseg-nas` process prints the same
    case = next(c for c in rt.CASES if c.name == name)
    inproc = rt.run_case(case, tmp_path / "a")
    real = rt.run_case(case, tmp_path / "b", subprocess_mode=True)
    norm = lambda o: rt._normalise(o.seen(), o.folder)  # noqa: E731
    assert (inproc.rc, norm(inproc)) == (real.rc, norm(real)), real.stderr[-1500:]


def test_a_traceback_shows_in_the_table(rt, monkeypatch):
    import medseg_nas.stages.report as report

    def boom(args):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(report, "main", boom)
    case = rt.Case("command line", "a crash", lambda d: ["report", str(d)], name="crash")
    table, outcomes = rt.generate(cases=[case])
    assert outcomes[0][1].traceback and outcomes[0][1].rc == 1
    assert "TRACEBACK … RuntimeError: unexpected" in table
