"""Address pools: ranges, exclusions, exhaustion, specific addresses, VR separation."""
import ipaddress

import pytest

from responder.pools import (AddressInUseError, DoubleReleaseError, PoolConfigError,
                             PoolExhaustedError, PoolManager, UnknownPoolError, parse_range)

A = ipaddress.IPv4Address


def test_parse_range_forms():
    assert parse_range("10.0.0.1-10.0.0.3") == (int(A("10.0.0.1")), int(A("10.0.0.3")))
    assert parse_range("10.0.0.0/30") == (int(A("10.0.0.1")), int(A("10.0.0.2")))
    assert parse_range("10.0.0.7") == (int(A("10.0.0.7")),) * 2
    with pytest.raises(PoolConfigError):
        parse_range("10.0.0.9-10.0.0.1")


def test_several_ranges_and_exclusions_are_honoured():
    pools = PoolManager()
    pool = pools.add_pool("vr1", "p", ["10.1.0.1-10.1.0.4", "10.2.0.1-10.2.0.2"],
                          exclude=["10.1.0.2", "10.2.0.1-10.2.0.9"])
    assert pool.size == 3
    got = {pools.allocate("vr1", "p", owner=i).address for i in range(3)}
    assert got == {A("10.1.0.1"), A("10.1.0.3"), A("10.1.0.4")}
    with pytest.raises(PoolExhaustedError, match="3 of 3"):
        pools.allocate("vr1", "p", owner=99)


def test_release_makes_address_available_again_fifo():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1-10.0.0.3"])
    leases = [pools.allocate("vr1", "p", owner=i) for i in range(3)]
    pools.release(leases[1])
    pools.release(leases[0])
    # oldest release first
    assert pools.allocate("vr1", "p", owner=10).address == leases[1].address
    assert pools.allocate("vr1", "p", owner=11).address == leases[0].address


def test_double_release_is_loud():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1-10.0.0.3"])
    lease = pools.allocate("vr1", "p", owner=1)
    pools.release(lease)
    with pytest.raises(DoubleReleaseError):
        pools.release(lease)


def test_release_by_wrong_owner_is_loud():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1-10.0.0.3"])
    lease = pools.allocate("vr1", "p", owner=1)
    other = pools.allocate("vr1", "p", owner=2)
    pools.release(other)
    forged = type(lease)(vr=lease.vr, address=lease.address, pool=lease.pool, owner=2)
    with pytest.raises(DoubleReleaseError):
        pools.release(forged)


def test_specific_address_inside_pool_is_never_handed_out_twice():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1-10.0.0.4"])
    lease = pools.reserve("vr1", "10.0.0.2", owner="radius-user")
    assert lease.pool == "p"
    others = {pools.allocate("vr1", "p", owner=i).address for i in range(3)}
    assert A("10.0.0.2") not in others
    with pytest.raises(PoolExhaustedError):
        pools.allocate("vr1", "p", owner=9)
    with pytest.raises(AddressInUseError):
        pools.reserve("vr1", "10.0.0.2", owner="someone else")


def test_specific_address_on_free_list_is_skipped_when_it_comes_up():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1-10.0.0.2"])
    first = pools.allocate("vr1", "p", owner=1)
    second = pools.allocate("vr1", "p", owner=2)
    pools.release(first)                       # on the free list now
    pools.reserve("vr1", first.address, owner=3)  # taken specifically
    with pytest.raises(PoolExhaustedError):
        pools.allocate("vr1", "p", owner=4)     # the stale free-list entry is skipped
    pools.release(second)
    assert pools.allocate("vr1", "p", owner=5).address == second.address


def test_address_outside_every_pool_is_tracked():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1-10.0.0.4"])
    lease = pools.reserve("vr1", "172.16.5.5", owner=1)
    assert lease.pool is None
    with pytest.raises(AddressInUseError):
        pools.reserve("vr1", "172.16.5.5", owner=2)
    pools.release(lease)
    pools.reserve("vr1", "172.16.5.5", owner=2)
    # a VR without pools still tracks RADIUS addresses
    pools.reserve("vr9", "172.16.5.5", owner=3)
    with pytest.raises(AddressInUseError):
        pools.reserve("vr9", "172.16.5.5", owner=4)


def test_same_addresses_in_two_vrs_are_independent():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1"])
    pools.add_pool("vr2", "p", ["10.0.0.1"])
    a = pools.allocate("vr1", "p", owner=1)
    b = pools.allocate("vr2", "p", owner=2)
    assert a.address == b.address and a.vr != b.vr


def test_overlapping_pools_in_one_vr_are_refused():
    pools = PoolManager()
    pools.add_pool("vr1", "a", ["10.0.0.1-10.0.0.10"])
    with pytest.raises(PoolConfigError, match="overlap"):
        pools.add_pool("vr1", "b", ["10.0.0.5-10.0.0.20"])
    with pytest.raises(PoolConfigError, match="twice"):
        pools.add_pool("vr1", "a", ["10.9.0.1"])
    with pytest.raises(PoolConfigError, match="no address"):
        pools.add_pool("vr1", "c", ["10.7.0.1"], exclude=["10.7.0.0/24"])


def test_unknown_vr_or_pool():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1"])
    with pytest.raises(UnknownPoolError):
        pools.allocate("vr2", "p", owner=1)
    with pytest.raises(UnknownPoolError):
        pools.allocate("vr1", "q", owner=1)


def test_stats():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.0/24"])
    pools.add_pool("vr2", "q", ["10.0.0.1-10.0.0.10"])
    for i in range(5):
        pools.allocate("vr1", "p", owner=i)
    stats = pools.stats()
    assert [(s.vr, s.pool, s.size, s.used, s.free) for s in stats] == [
        ("vr1", "p", 254, 5, 249), ("vr2", "q", 10, 0, 10)]


def test_random_churn_never_duplicates(rng=None):
    import random
    rng = random.Random(1234)
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1-10.0.0.50", "10.0.1.1-10.0.1.50"], exclude=["10.0.0.25"])
    held = {}
    for step in range(5000):
        action = rng.random()
        if action < 0.5 and len(held) < 99:
            lease = pools.allocate("vr1", "p", owner=step)
            assert lease.address not in held
            held[lease.address] = lease
        elif action < 0.6:
            address = A(f"10.0.{rng.choice([0, 1])}.{rng.randint(1, 60)}")
            if address in held:
                with pytest.raises(AddressInUseError):
                    pools.reserve("vr1", address, owner=step)
            else:
                held[address] = pools.reserve("vr1", address, owner=step)
        elif held:
            address = rng.choice(sorted(held))
            pools.release(held.pop(address))
        in_pool = sum(1 for lease in held.values() if lease.pool == "p")
        assert pools.stats()[0].used == in_pool
    assert A("10.0.0.25") not in {l.address for l in held.values() if l.pool}


def test_ten_thousand_allocations():
    pools = PoolManager()
    pools.add_pool("vr1", "big", ["10.64.0.0/16"])
    leases = [pools.allocate("vr1", "big", owner=i) for i in range(10_000)]
    assert len({l.address for l in leases}) == 10_000
    for lease in leases:
        pools.release(lease)
    assert pools.stats()[0].used == 0


def test_assign_prefers_the_aaa_address():
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.0.0.1-10.0.0.9"])
    assert pools.assign("vr1", 1, address="10.0.0.5", pool="p").address == A("10.0.0.5")
    assert pools.assign("vr1", 2, pool="p").address == A("10.0.0.1")
    with pytest.raises(UnknownPoolError):
        pools.assign("vr1", 3)


def test_a_grown_pool_keeps_its_leases_and_an_overlapping_one_is_refused():
    manager = PoolManager()
    manager.add_pool("vr1", "a", ["10.0.0.0/30"])
    manager.add_pool("vr1", "b", ["10.0.1.0/24"])
    lease = manager.allocate("vr1", "a", "alice")
    vr = manager.vr("vr1")
    grown = vr.grow_pool("a", ["10.0.0.0/29"], [])
    assert grown.size == 6 and grown.used == 1 and vr.pool("a") is grown
    assert vr.allocate("a", "bob").address != lease.address     # alice's stays hers
    with pytest.raises(PoolConfigError):
        vr.grow_pool("a", ["10.0.0.0/23"], [])                   # would overlap "b"
    assert vr.pool("a") is grown
    manager.release(lease)
    assert grown.used == 1
