"""The two busiest routes read their token without FastAPI's dependency: it must be read exactly as the
`HTTPBearer` dependency of every other route reads it, whatever the header holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from api.auth import bearer, bearer_token


def _request(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode("latin-1"))]
    return Request({"type": "http", "method": "POST", "path": "/v1/settlements", "headers": headers})


def _as_dependency_reads(authorization: str | None) -> str | None:
    # The dependency awaits nothing: its coroutine is run to its end here, without an event loop (a browser
    # test may have left one running in this thread).
    coroutine = bearer(_request(authorization))
    try:
        coroutine.send(None)
    except StopIteration as finished:
        found = finished.value
    else:
        raise AssertionError("the bearer dependency awaited something")
    return None if found is None else found.credentials


_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)


@given(
    st.one_of(
        st.none(),
        _HEADER_TEXT,
        st.builds(
            lambda scheme, gap, token: f"{scheme}{gap}{token}",
            st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", ""]),
            st.sampled_from(["", " ", "  "]),
            _HEADER_TEXT,
        ),
    )
)
def test_the_token_is_read_as_the_bearer_dependency_reads_it(authorization: str | None) -> None:
    assert bearer_token(_request(authorization)) == _as_dependency_reads(authorization)


def test_a_bearer_header_gives_its_token_and_anything_else_none() -> None:
    assert bearer_token(_request("Bearer abc.def")) == "abc.def"
    assert bearer_token(_request("bearer  abc ")) == "abc"
    assert bearer_token(_request("Basic abc")) is None
    assert bearer_token(_request("Bearer")) is None
    assert bearer_token(_request(None)) is None
