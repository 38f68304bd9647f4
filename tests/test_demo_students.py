"""``minidistil demo --students``: train only some of the four students (the distilled one always)."""
import pytest

from minidistil.train.controls import STUDENTS, parse_students


def test_parse_students_takes_letters_or_folders_in_the_tables_order():
    assert parse_students("a,distill") == ("distill", "control-mlm-teacher-init")
    assert parse_students(" distill , control-triple-random-init ") == ("distill", "control-triple-random-init")
    assert parse_students("distill,a,b,c") == tuple(STUDENTS)


@pytest.mark.parametrize("text, says", [("x", "unknown student 'x'"), ("a,b", "must include distill"),
                                        ("", "must include distill")])
def test_parse_students_names_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says):
        parse_students(text)


def test_cli_refuses_a_bad_list_in_one_line(capsys):
    from minidistil.cli import main
    assert main(["demo", "--students", "distill,z"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--students" in err[0] and "unknown student 'z'" in err[0]
