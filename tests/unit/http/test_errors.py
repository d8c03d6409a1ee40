"""The one table of domain errors to status codes (http/errors.py)."""

from __future__ import annotations

import cheeseboard.http.app  # noqa: F401 - imports every module that defines a domain error
from cheeseboard.http.errors import STATUSES, status_of
from cheeseboard.services.errors import CheeseboardError
from cheeseboard.services.uploads import UploadConflict, UploadRefused
from cheeseboard.services.upstream_names import UpstreamNameShadowed, UpstreamNameUnchecked


def _subclasses(cls: type[CheeseboardError]) -> set[type[CheeseboardError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_domain_error_has_a_status() -> None:
    """No domain error falls through to the logged 500 of an unmapped class (the leaves: a
    base such as UpstreamName is only raised as one of its subclasses)."""
    leaves = {cls for cls in _subclasses(CheeseboardError) if not cls.__subclasses__()}
    mapped = tuple(cls for cls, _ in STATUSES)
    unmapped = {cls.__name__ for cls in leaves if not issubclass(cls, mapped)}
    assert unmapped == set()


def test_a_subclass_comes_before_its_base() -> None:
    """The table is walked in order, so a more specific class must not be shadowed."""
    classes = [cls for cls, _ in STATUSES]
    for i, cls in enumerate(classes):
        assert not any(issubclass(cls, earlier) for earlier in classes[:i]), cls


def test_kinds_of_one_refusal_answer_differently() -> None:
    assert status_of(UploadRefused("x")) == 400
    assert status_of(UploadConflict("x")) == 409
    assert status_of(UpstreamNameShadowed("x")) == 403
    assert status_of(UpstreamNameUnchecked("x")) == 503
    assert status_of(CheeseboardError("x")) is None
