import math

import nbformat
import numpy as np
import pytest
import torch

from interp_helpers.workbook.results import RESULT_MIME, _to_json_value, read_results, record


def test_record_outside_a_kernel_prints_and_returns_plain_values(capsys):
    assert record("loss", torch.tensor(0.25)) == 0.25
    assert "[record] loss = 0.25" in capsys.readouterr().out
    assert record("counts", np.array([1, 2])) == [1, 2]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_record_rejects_non_finite(bad):
    with pytest.raises(ValueError, match="not finite"):
        _to_json_value(bad)


def test_record_rejects_bad_names_and_types():
    with pytest.raises(ValueError, match="valid identifier"):
        record("two words", 1)
    with pytest.raises(TypeError, match="cannot store"):
        record("obj", object())


def test_read_results_later_wins():
    output = lambda name, value: nbformat.v4.new_output(  # noqa: E731
        "display_data", data={"text/plain": "x", RESULT_MIME: {"name": name, "value": value, "unit": ""}}
    )
    cell = nbformat.v4.new_code_cell(outputs=[output("a", 1), output("b", 2), output("a", 3)])
    assert read_results(nbformat.v4.new_notebook(cells=[cell])) == {"a": 3, "b": 2}
