import pytest

from conftest import TINY
from interp_helpers.catalog import CatalogError, find_notebook, parse_parameters_cell, read_notebook_info


def test_parse_parameters_cell_types_defaults_and_help():
    params = parse_parameters_cell(
        'n: int = 5  # how many\nrate: float = 0.1\nname: str = "a"  # a name\n'
        "flags: list[int] = [1, 2]  # some ints\nfast: bool = False\n"
    )
    assert [p.type for p in params.values()] == ["int", "float", "str", "list[int]", "bool"]
    assert params["n"].default == 5 and params["n"].help == "how many"
    assert params["flags"].default == [1, 2]
    assert params["rate"].help == ""


@pytest.mark.parametrize(
    "source, message",
    [("x = 5\n", "expected 'name: type = literal'"), ("x: dict = {}\n", "not supported"),
     ("import os\n", "expected")],
)
def test_parse_parameters_cell_rejects_untyped_lines(source, message):
    with pytest.raises(CatalogError, match=message):
        parse_parameters_cell(source)


@pytest.mark.parametrize(
    "type_name, text, expected",
    [("int", "3", 3), ("float", "1e-3", 1e-3), ("bool", "True", True), ("bool", "0", False),
     ("str", "hi", "hi"), ("list[float]", "1,2.5", [1.0, 2.5]), ("list[int]", "[1, 2]", [1, 2]),
     ("list[str]", "a,b", ["a", "b"])],
)
def test_parameter_parse(type_name, text, expected):
    params = parse_parameters_cell(f"x: {type_name} = {expected!r}\n")
    assert params["x"].parse(text) == expected


@pytest.mark.parametrize("type_name, text", [("int", "2.5"), ("bool", "maybe"), ("list[int]", "1,x")])
def test_parameter_parse_errors_name_the_parameter(type_name, text):
    default = "[]" if type_name.startswith("list") else "0"
    params = parse_parameters_cell(f"x: {type_name} = {default}\n")
    with pytest.raises(CatalogError, match=r"parameter x: .* is not a valid"):
        params["x"].parse(text)


def test_unknown_parameter_lists_valid_names():
    info = read_notebook_info(TINY)
    with pytest.raises(CatalogError, match="unknown parameter 'scal'.*valid: scale, count"):
        info.parse_parameters([("scal", "1")])


def test_find_notebook_by_number_and_name():
    assert find_notebook("01").path.name.startswith("01_")
    assert find_notebook("1").path == find_notebook("01").path
    assert find_notebook(find_notebook("01").path.name).path == find_notebook("01").path
    with pytest.raises(CatalogError, match="unknown notebook .99.; available: .*01_superposition"):
        find_notebook("99")
