"""`relay demo` runs on its own and shows each side only the other's alias."""

from __future__ import annotations

import os
import re
import subprocess
import sys

PARTY = re.compile(r"^\s+(Buyer|Seller)\s.*real address (\S+@\S+)\s+alias ([0-9a-f]{16}@\S+)$", re.M)


def test_demo_shows_each_side_only_aliases(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    done = subprocess.run([sys.executable, "-m", "relay", "demo"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = done.stdout
    parties = {role: (real, alias) for role, real, alias in PARTY.findall(out)}
    assert set(parties) == {"Buyer", "Seller"}, out
    (buyer_real, buyer_alias), (seller_real, seller_alias) = parties["Buyer"], parties["Seller"]
    assert buyer_alias != seller_alias

    seller_part = out.split("What the seller receives", 1)[1].split("What the buyer receives", 1)[0]
    buyer_part = out.split("What the buyer receives", 1)[1]
    assert buyer_real not in seller_part.lower()
    assert seller_real not in buyer_part.lower()
    assert re.search(rf"^\s+From: .*<{re.escape(buyer_alias)}>$", seller_part, re.M), seller_part
    assert re.search(rf"^\s+From: .*<{re.escape(seller_alias)}>$", buyer_part, re.M), buyer_part
    # The bodies named the sender's real address: it must have become the alias.
    assert re.search(rf"^\s+\|.*{re.escape(buyer_alias)}", seller_part, re.M), seller_part
    assert re.search(rf"^\s+\|.*{re.escape(seller_alias)}", buyer_part, re.M), buyer_part
    assert list(tmp_path.iterdir()) == [temp] and list(temp.iterdir()) == []  # cleaned up after itself
