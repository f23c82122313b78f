"""Licenses: all-or-nothing acquisition, reasons, exactly-once release."""
import pytest

from responder.licenses import (SUBSCRIBER, TUNNEL, LicenseHeldError, LicenseManager,
                                LicenseRefused, LicenseReleaseError)


def test_acquire_and_release_both():
    lic = LicenseManager(tunnel_licenses=2, subscriber_licenses=2)
    lic.acquire_both(1)
    assert [(s.kind, s.in_use) for s in lic.stats()] == [(TUNNEL, 1), (SUBSCRIBER, 1)]
    lic.release_both(1)
    assert [s.in_use for s in lic.stats()] == [0, 0]


def test_subscriber_pool_exhausted_takes_nothing():
    lic = LicenseManager(tunnel_licenses=5, subscriber_licenses=1)
    lic.acquire_both(1)
    with pytest.raises(LicenseRefused) as refused:
        lic.acquire_both(2)
    assert str(refused.value) == "no subscriber license available (1 of 1 in use)"
    assert refused.value.kind == SUBSCRIBER
    assert lic.tunnel.in_use == 1          # the tunnel license was not taken for 2
    assert lic.refusals == {SUBSCRIBER: 1}
    lic.release_both(1)
    lic.acquire_both(2)                     # succeeds once the first logs out


def test_tunnel_pool_exhausted_takes_nothing():
    lic = LicenseManager(tunnel_licenses=1, subscriber_licenses=5)
    lic.acquire_both(1)
    with pytest.raises(LicenseRefused, match=r"no IPsec tunnel license available \(1 of 1 in use\)"):
        lic.acquire_both(2)
    assert lic.subscriber.in_use == 1
    assert lic.refusals == {TUNNEL: 1}


def test_zero_licenses():
    lic = LicenseManager(tunnel_licenses=0, subscriber_licenses=0)
    with pytest.raises(LicenseRefused, match="0 of 0"):
        lic.acquire_both(1)


def test_release_exactly_once():
    lic = LicenseManager(2, 2)
    lic.acquire_both("a")
    lic.release_both("a")
    with pytest.raises(LicenseReleaseError):
        lic.release_both("a")
    with pytest.raises(LicenseReleaseError):
        lic.release_both("never")
    assert [s.in_use for s in lic.stats()] == [0, 0]


def test_acquire_twice_by_one_holder_is_a_bug():
    lic = LicenseManager(2, 2)
    lic.acquire_both("a")
    with pytest.raises(LicenseHeldError):
        lic.acquire_both("a")
    assert [s.in_use for s in lic.stats()] == [1, 1]
