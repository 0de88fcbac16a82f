"""The alias codec and its key files: round trips, forgeries, rotation, file modes."""

from __future__ import annotations

import os
import random
import re
import stat
import subprocess
import sys

import pytest

from aliasing.codec import MAX_THREAD_ID, Key, KeyRing, Party
from aliasing.keys import KeyFileError, add_key, ensure_key_file, load_key_ring

HEX16 = re.compile(r"^[0-9a-f]{16}$")
THREAD_IDS = [1, 2, 3, 255, 256, 65535, 65536, MAX_THREAD_ID - 1, MAX_THREAD_ID,
              *random.Random(7).sample(range(1, MAX_THREAD_ID), 500), *range(4, 300)]


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing([Key("k1", bytes(range(32)))])


@pytest.mark.parametrize("party", [Party.BUYER, Party.SELLER])
def test_round_trip_for_many_threads(ring, party):
    for thread_id in THREAD_IDS:
        alias = ring.encode(thread_id, party)
        assert HEX16.match(alias), alias
        decoded = ring.decode(alias)
        assert decoded is not None, thread_id
        assert (decoded.thread_id, decoded.party, decoded.key_id) == (thread_id, party, "k1")


def test_decoding_ignores_letter_case(ring):
    alias = ring.encode(42, Party.SELLER)
    assert ring.decode(alias.upper()) == ring.decode(alias)


def test_the_two_aliases_of_a_thread_differ_and_name_their_party(ring):
    for thread_id in THREAD_IDS:
        buyer, seller = ring.encode(thread_id, Party.BUYER), ring.encode(thread_id, Party.SELLER)
        assert buyer != seller
        assert ring.decode(buyer).party is Party.BUYER
        assert ring.decode(seller).party is Party.SELLER


def test_every_alias_is_distinct(ring):
    aliases = {ring.encode(t, p) for t in THREAD_IDS for p in Party}
    assert len(aliases) == 2 * len(set(THREAD_IDS))


def test_neighbouring_threads_share_no_visible_structure(ring):
    # A counter would show in some hex digit; a permutation changes about half the bits.
    a, b = int(ring.encode(1000, Party.BUYER), 16), int(ring.encode(1001, Party.BUYER), 16)
    assert 16 <= bin(a ^ b).count("1") <= 48


def test_random_aliases_do_not_decode(ring):
    rng = random.Random(2024)
    forged = [f"{rng.getrandbits(64):016x}" for _ in range(10_000)]
    assert [f for f in forged if ring.decode(f) is not None] == []


def test_a_one_bit_change_makes_an_alias_invalid(ring):
    alias = int(ring.encode(77, Party.BUYER), 16)
    for bit in range(64):
        assert ring.decode(f"{alias ^ (1 << bit):016x}") is None, bit


@pytest.mark.parametrize("text", ["", "abc", "0123456789abcdef0", "0123456789abcdeg",
                                  "0123456789abcde ", "ｆ123456789abcdef"])
def test_non_alias_text_does_not_decode(ring, text):
    assert ring.decode(text) is None


@pytest.mark.parametrize("thread_id", [0, -1, MAX_THREAD_ID + 1])
def test_thread_ids_outside_the_range_are_refused(ring, thread_id):
    with pytest.raises(ValueError):
        ring.encode(thread_id, Party.BUYER)


def test_another_key_does_not_decode(ring):
    other = KeyRing([Key("x", bytes(32))])
    assert all(other.decode(ring.encode(t, Party.BUYER)) is None for t in THREAD_IDS[:200])


def test_key_file_is_created_private_and_never_overwritten(tmp_path):
    path = tmp_path / "keys" / "alias.keys"
    assert ensure_key_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    assert ensure_key_file(path) is False
    assert path.read_bytes() == before
    ring = load_key_ring(path)
    assert [k.key_id for k in ring.keys] == ["k1"] and len(ring.current.secret) == 32


def test_two_key_files_hold_different_keys(tmp_path):
    ensure_key_file(tmp_path / "a")
    ensure_key_file(tmp_path / "b")
    assert load_key_ring(tmp_path / "a").current.secret != load_key_ring(tmp_path / "b").current.secret


def test_rotation_keeps_old_aliases_and_encodes_with_the_new_key(tmp_path):
    path = tmp_path / "alias.keys"
    ensure_key_file(path)
    old_ring = load_key_ring(path)
    old = {(t, p): old_ring.encode(t, p) for t in THREAD_IDS[:100] for p in Party}
    assert add_key(path) == "k2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = load_key_ring(path)
    assert [k.key_id for k in ring.keys] == ["k1", "k2"]
    for (thread_id, party), alias in old.items():
        decoded = ring.decode(alias)
        assert (decoded.thread_id, decoded.party, decoded.key_id) == (thread_id, party, "k1")
    for (thread_id, party), alias in old.items():
        new = ring.encode(thread_id, party)
        assert new != alias
        decoded = ring.decode(new)
        assert (decoded.thread_id, decoded.party, decoded.key_id) == (thread_id, party, "k2")
        assert old_ring.decode(new) is None


def test_rotation_after_the_oldest_key_was_retired_gives_a_fresh_id(tmp_path):
    path = tmp_path / "alias.keys"
    ensure_key_file(path)
    add_key(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if not line.startswith("k1 ")) + "\n")
    assert add_key(path) == "k3"
    assert [k.key_id for k in load_key_ring(path).keys] == ["k2", "k3"]


def test_rotation_copes_with_a_key_file_without_a_final_newline(tmp_path):
    path = tmp_path / "alias.keys"
    ensure_key_file(path)
    path.write_text(path.read_text().rstrip("\n"))
    assert add_key(path) == "k2"
    assert [k.key_id for k in load_key_ring(path).keys] == ["k1", "k2"]


def test_a_key_id_used_twice_is_refused(tmp_path):
    path = tmp_path / "alias.keys"
    path.write_text(f"k1 {'ab' * 32}\nk1 {'cd' * 32}\n")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="line 2.*twice"):
        load_key_ring(path)


def test_a_key_file_that_cannot_be_created_gives_one_clear_error(tmp_path):
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(KeyFileError, match="cannot create"):
        ensure_key_file(tmp_path / "plain-file" / "alias.keys")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620])
def test_a_key_file_others_can_reach_is_refused(tmp_path, mode):
    path = tmp_path / "alias.keys"
    ensure_key_file(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_ring(path)


@pytest.mark.parametrize("text, reason", [
    ("", "no key"),
    ("# only a comment\n\n", "no key"),
    ("k1\n", "line 1"),
    ("k1 abcd\n", "line 1"),
    ("# keys\nk1 " + "zz" * 32 + "\n", "line 2.*not hex"),
    ("k1 " + "ab" * 32 + " extra\n", "line 1"),
    ("k1 " + "ab" * 33 + "\n", "line 1"),
    ("k1 " + "ab" * 32 + "\n\xff\n", "cannot read"),
])
def test_a_malformed_key_file_gives_one_clear_error(tmp_path, text, reason):
    path = tmp_path / "alias.keys"
    path.write_bytes(text.encode("latin-1"))
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match=reason) as caught:
        load_key_ring(path)
    assert "\n" not in str(caught.value)


def test_a_missing_key_file_says_to_run_init(tmp_path):
    with pytest.raises(KeyFileError, match="relay init"):
        load_key_ring(tmp_path / "nothing.keys")


def test_the_command_line_reports_a_bad_key_file_in_one_line(tmp_path):
    (tmp_path / "relay.toml").write_text('[aliases]\nkey_file = "alias.keys"\n[storage]\nurl = "sqlite:///r.db"\n')
    key_file = tmp_path / "alias.keys"
    key_file.write_text("k1 nothex\n")
    os.chmod(key_file, 0o600)
    done = subprocess.run([sys.executable, "-m", "relay", "--config", str(tmp_path / "relay.toml"),
                           "seller", "add", "S1", "--email", "a@shop.example", "--name", "Shop"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "key file" in done.stderr and "Traceback" not in done.stderr
