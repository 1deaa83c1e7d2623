"""A notice of committed events names the tenant and the sequence, whatever the tenant id."""

from __future__ import annotations

import pytest

from smarttrade.store.notices import parse_payload, payload_of


@pytest.mark.parametrize("tenant_id", ["tenant-a", "a tenant with spaces", "ünïcode", "1 2"])
def test_a_notice_says_which_tenant_committed_through_which_sequence(tenant_id: str) -> None:
    assert parse_payload(payload_of(tenant_id, 42)) == (tenant_id, 42)


@pytest.mark.parametrize("payload", ["", "42", "x tenant", "-1 tenant", "٤٢ tenant", " tenant"])
def test_a_notice_that_is_not_ours_is_ignored(payload: str) -> None:
    assert parse_payload(payload) is None
