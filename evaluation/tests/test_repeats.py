from evaluation.repeats import repeat_result


def test_pass_at_k_and_pass_all_k():
    mixed = repeat_result(["pass", "fail", "pass"])
    assert (mixed.k, mixed.passes, mixed.pass_at_k, mixed.pass_all_k, mixed.flaky) == (
        3,
        2,
        True,
        False,
        True,
    )
    every = repeat_result(["pass", "pass"])
    assert (every.pass_at_k, every.pass_all_k, every.flaky) == (True, True, False)
    none = repeat_result(["fail", "fail"])
    assert (none.pass_at_k, none.pass_all_k, none.flaky) == (False, False, False)


def test_ungraded_repeats_count_neither_way():
    waiting = repeat_result(["", "ungraded"])
    assert (waiting.graded, waiting.pass_at_k, waiting.pass_all_k) == (0, None, None)
    partial = repeat_result(["pass", ""])
    assert (partial.pass_at_k, partial.pass_all_k) == (True, False)
