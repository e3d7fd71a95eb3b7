import pytest

from headwater.errors import InvalidReference
from headwater.refs import DatasetName, VersionRef, check_alias


def parse(text: str) -> VersionRef:
    return VersionRef.parse(text, default_namespace="default")


@pytest.mark.parametrize(
    ("text", "ns", "name", "selector", "kind"),
    [
        ("users", "default", "users", "latest", "latest"),
        ("users@latest", "default", "users", "latest", "latest"),
        ("prod/users@production", "prod", "users", "production", "alias"),
        ("users@7", "default", "users", "7", "number"),
        ("users@007", "default", "users", "7", "number"),
        ("users@3f9a2c", "default", "users", "3f9a2c", "digest"),
        ("users@best", "default", "users", "best", "alias"),
        ("users@1.0-kaggle", "default", "users", "1.0-kaggle", "alias"),
    ],
)
def test_parse(text: str, ns: str, name: str, selector: str, kind: str) -> None:
    ref = parse(text)
    assert (ref.dataset.namespace, ref.dataset.name, ref.selector, ref.kind) == (
        ns,
        name,
        selector,
        kind,
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty reference"),
        ("users@", "ends with '@'"),
        ("users@@1", "more than one '@'"),
        ("users@0", "start at 1"),
        ("users@-x", "not a number, an alias, a label or a digest prefix"),
        ("a/b/c@1", "invalid namespace"),
        ("../x", "invalid namespace"),
        ("user s", "invalid dataset name"),
    ],
)
def test_bad_references_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReference, match=fragment):
        parse(text)


def test_aliases_cannot_look_like_digests_or_numbers() -> None:
    with pytest.raises(InvalidReference, match="looks like a digest"):
        check_alias("beef12")
    with pytest.raises(InvalidReference):
        check_alias("12")
    assert check_alias("production") == "production"


def test_dataset_name_rejects_references() -> None:
    with pytest.raises(InvalidReference, match="is a reference"):
        DatasetName.parse("users@1", default_namespace="default")


def test_labels_that_could_mean_something_else_are_refused() -> None:
    from headwater.refs import check_label

    assert check_label("1.0-kaggle") == "1.0-kaggle"
    for bad, why in [("12", "version number"), ("abcdef12", "digest prefix"),
                     ("latest", "newest"), ("-x", "invalid label"), ("a b", "invalid label")]:
        with pytest.raises(InvalidReference, match=why):
            check_label(bad)
