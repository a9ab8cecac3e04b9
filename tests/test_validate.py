"""`sora validate` on hostile inputs: exit 1, one clear line per problem, never a traceback."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from sora.cli import app
from sora.config import load_params

runner = CliRunner()


def _validate(*paths):
    result = runner.invoke(app, ["validate", *map(str, paths)])
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    return result


def test_valid_files_pass(tmp_path):
    csv = tmp_path / "ok.csv"
    csv.write_text("text,label,lang\n好看,1,zh\nbad movie,0,en\n", encoding="utf-8")
    jsonl = tmp_path / "ok.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in [("good", 1), ("差", 0)]))
    pq = tmp_path / "ok.parquet"
    pd.DataFrame({"text": ["a b", "c d"], "label": [0, 1]}).to_parquet(pq)
    tsv = tmp_path / "ok.tsv"
    tsv.write_bytes("\ufefftext\tlabel\r\n很好\t1\r\nawful\t0\r\n".encode("utf-8"))  # BOM + CRLF are fine
    result = _validate(csv, jsonl, pq, tsv)
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == 4


CASES = {
    "gbk.csv": ("text,label\n这本书很好,1\n太差了,0\n".encode("gbk"), "not valid UTF-8"),
    "misspelled.csv": (b"txt,label\nhello,1\n", "missing column 'text' (found 'txt': misspelled?"),
    "capitals.csv": (b"Text,Label\nhello,1\n", "(found 'Text': misspelled? names are case-sensitive)"),
    "semicolons.csv": (b"text;label\nhello;1\n", "header parsed as one column: .csv must be comma-separated"),
    "broken.jsonl": (b'{bad\n{"text": 1,\n', "broken.jsonl:1: invalid JSON"),
    "nolabel.csv": (b"text\nhello\n", "missing column 'label'"),
    "empty.csv": (b"", "file is empty"),
    "header.csv": (b"text,label\n", "header only"),
    "binary.csv": (bytes(range(256)) * 10, "looks binary"),
    "junk.parquet": (b"PAR1 not really parquet", "not a readable Parquet file"),
    "ext.xlsx": (b"whatever", "unsupported file type"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_unusable_files(tmp_path, name):
    content, expected = CASES[name]
    path = tmp_path / name
    path.write_bytes(content)
    result = _validate(path)
    assert result.exit_code == 1
    assert expected in result.output and str(path) in result.output


def test_missing_path(tmp_path):
    result = _validate(tmp_path / "nope.csv")
    assert result.exit_code == 1 and "no such file" in result.output


def test_row_problems_are_reported_with_row_numbers(tmp_path):
    path = tmp_path / "rows.csv"
    big = "长" * 1_000_000
    path.write_text(
        "text,label\n"
        "fine text,1\n"  # line 2 ok
        "   ,0\n"  # line 3 whitespace-only text
        "no label,\n"  # line 4 missing label
        "float label,1.5\n"  # line 5
        "word label,positive\n"  # line 6
        "nan label,NaN\n"  # line 7
        f"{big},0\n",  # line 8: 1 MB row
        encoding="utf-8",
    )
    result = _validate(path)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert f"{path}:3: text is empty" in lines
    assert f"{path}:4: label is missing" in lines
    assert any(line.startswith(f"{path}:5: label '1.5' is a float") for line in lines)
    assert any(line.startswith(f"{path}:6: label 'positive' is not an integer") for line in lines)
    assert f"{path}:7: label is missing" in lines
    assert any(line.startswith(f"{path}:8: text has 1,000,000 characters") for line in lines)
    assert all(len(line) < 300 for line in lines)


def test_single_class_is_a_warning_not_a_failure(tmp_path):
    # Usable as extra examples of one class beside the built-in corpora: worth a warning, not exit 1.
    path = tmp_path / "one.csv"
    path.write_text("text,label\ngood,1\ngreat,1\n")
    result = _validate(path)
    assert result.exit_code == 0 and "warning:" in result.output and "only one class" in result.output


def test_jsonl_bad_lines_and_float_labels(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(
        '{"text": "good", "label": 1}\n{oops\n{"text": "bad", "label": 0.0}\n[1,2]\n{"text": "meh", "label": 0}\n'
    )
    result = _validate(path)
    assert result.exit_code == 1
    assert f"{path}:2: invalid JSON" in result.output
    assert f"{path}:3: label 0.0 is a float" in result.output
    assert f"{path}:4: line is not a JSON object" in result.output


def test_a_label_outside_the_tasks_classes_names_the_row_and_the_fix(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("text,label\ngood,1\nbad,0\nodd,7\n")
    result = _validate(path)
    assert result.exit_code == 1
    assert f"{path}:4: label 7 is not a class of task sentiment (0..1: negative, positive)" in result.output
    assert "tasks.sentiment.classes" in result.output


def test_a_file_with_two_tasks_may_leave_one_label_empty_but_not_both(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("text,label,topic\ngood film,1,\n股市大涨,,9\nnothing here,,\nbad,0,3\n", encoding="utf-8")
    result = _validate(path)
    assert result.exit_code == 1
    assert f"{path}:4: no label for any task" in result.output
    path.write_text("text,label,topic\ngood film,1,\n股市大涨,,9\nbad,0,3\n", encoding="utf-8")
    result = _validate(path)
    assert result.exit_code == 0, result.output
    assert "3 rows; sentiment: 2 labeled, classes [0, 1]; topic: 2 labeled, classes [3, 9]" in result.output


def test_tsv_quotes_are_text_not_csv_quoting(tmp_path):
    """A TSV row opening an unclosed double quote used to swallow the rows after it (CSV quoting rules), and
    a closed leading quote was silently stripped. In TSV a quote is just a character."""
    from sora.data.user_files import read_labeled_file

    tsv = tmp_path / "quotes.tsv"
    tsv.write_text('text\tlabel\n"unclosed start\t1\nsecond row\t0\n"quoted" head\t1\nthird row\t0\n', encoding="utf-8")
    read = read_labeled_file(tsv, load_params().tasks)
    assert read.problems == []
    assert read.rows["text"].tolist() == ['"unclosed start', "second row", '"quoted" head', "third row"]
    assert read.rows["ref"].tolist() == ["quotes.tsv:2", "quotes.tsv:3", "quotes.tsv:4", "quotes.tsv:5"]


def test_a_parquet_file_with_empty_label_cells_reads_them_as_missing(tmp_path):
    """A numeric column with gaps is float64 in Parquet (or nullable Int64): 1.0 is class 1, NaN/NA no label."""
    from sora.data.user_files import read_labeled_file

    path = tmp_path / "two.parquet"
    frame = pd.DataFrame({"text": ["good film", "股市大涨", "bad"], "label": [1.0, None, 0.0]})
    frame["topic"] = pd.array([None, 9, 3], dtype="Int64")
    frame.to_parquet(path)
    read = read_labeled_file(path, load_params().tasks)
    assert read.problems == []
    assert read.rows["label"].tolist() == [1, -1, 0] and read.rows["topic"].tolist() == [-1, 9, 3]
