"""Share tokens: derived again for a retry, in the format the first answer was issued in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smarttrade.usecases.shares import TOKEN_FORMAT, ShareTokens

TOKENS = ShareTokens({"k1": b"a master key of the service", "k2": b"the next one"}, "k1")


@given(tenant=st.text(min_size=1), request_id=st.text(min_size=1))
def test_a_token_never_starts_with_a_dash_so_a_command_line_never_takes_it_for_an_option(
    tenant: str, request_id: str
) -> None:
    token = TOKENS.token("k1", tenant, request_id)

    assert token.startswith(f"st{TOKEN_FORMAT}_")
    assert not token.startswith("-")


@given(tenant=st.text(min_size=1), request_id=st.text(min_size=1))
def test_a_token_of_the_first_format_is_the_same_secret_without_the_prefix(
    tenant: str, request_id: str
) -> None:
    first_format = TOKENS.token("k1", tenant, request_id, token_format=0)

    assert TOKENS.token("k1", tenant, request_id) == f"st1_{first_format}"


def test_a_token_depends_on_the_key_the_tenant_and_the_request() -> None:
    tokens = {
        TOKENS.token("k1", "tenant-a", "r1"),
        TOKENS.token("k2", "tenant-a", "r1"),
        TOKENS.token("k1", "tenant-b", "r1"),
        TOKENS.token("k1", "tenant-a", "r2"),
    }

    assert len(tokens) == 4
    assert TOKENS.token("k1", "tenant-a", "r1") == TOKENS.token("k1", "tenant-a", "r1")
