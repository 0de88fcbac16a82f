"""The command line: set-up, sellers, threads, config lookup, errors, and `pip install`."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import aiosmtplib
import pytest

from tests.conftest import ALIAS_DOMAIN, BUYER_EMAIL, SELLER_EMAIL, compose, run_cli, send, write_config

CHECKOUT = Path(__file__).resolve().parent.parent
ALIAS = re.compile(rf"^[0-9a-f]{{16}}@{re.escape(ALIAS_DOMAIN)}$")


def relay(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`relay ARGS` in a fresh interpreter, as a user runs it."""
    full_env = {k: v for k, v in os.environ.items() if k != "RELAY_CONFIG"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "relay", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.endswith("\n") and done.stderr.count("\n") == 1, repr(done.stderr)
    assert done.stdout == ""
    return done.stderr


@pytest.fixture
def config(tmp_path) -> Path:
    path = write_config(tmp_path)
    assert run_cli(path, "init")[0] == 0
    return path


@pytest.fixture(scope="module")
def seller_config(tmp_path_factory) -> Path:
    """One initialized relay with seller S1, shared by tests that change nothing."""
    path = write_config(tmp_path_factory.mktemp("relay"))
    assert run_cli(path, "init")[0] == 0
    add_seller(path)
    return path


def add_seller(config: Path, seller_id: str = "S1", email: str = SELLER_EMAIL) -> None:
    code, out = run_cli(config, "seller", "add", seller_id, "--email", email, "--name", "Shop One")
    assert code == 0, out


def open_thread(config: Path, *extra: str, seller: str = "S1", order: str = "112-1234567-1234567",
                buyer: str = BUYER_EMAIL) -> tuple[int, str]:
    return run_cli(config, "thread", "open", "--seller", seller, "--buyer-email", buyer,
                   "--buyer-name", "Jane Buyer", "--order", order, *extra)


# --- init -------------------------------------------------------------------

def test_init_creates_a_private_key_file_and_is_idempotent(tmp_path):
    path = write_config(tmp_path)
    assert run_cli(path, "init")[0] == 0
    key_file = tmp_path / "keys" / "alias.keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (tmp_path / "data" / "relay.db").is_file()
    keys = key_file.read_bytes()
    add_seller(path)
    assert run_cli(path, "init")[0] == 0
    assert key_file.read_bytes() == keys
    code, _ = run_cli(path, "seller", "add", "S1", "--email", SELLER_EMAIL, "--name", "Shop One")
    assert code == 1  # the seller survived the second init


def test_init_refuses_a_key_file_others_can_read(tmp_path):
    path = write_config(tmp_path)
    assert run_cli(path, "init")[0] == 0
    os.chmod(tmp_path / "keys" / "alias.keys", 0o644)
    assert "chmod 600" in one_error_line(relay("--config", str(path), "init", cwd=tmp_path))


# --- sellers ----------------------------------------------------------------

def test_seller_add_and_duplicate(config):
    code, out = run_cli(config, "seller", "add", "S1", "--email", "Owner@SellerShop.example", "--name", "Shop One")
    assert code == 0
    assert json.loads(out) == {"seller_id": "S1", "email": "Owner@sellershop.example", "name": "Shop One"}
    done = relay("--config", str(config), "seller", "add", "S1", "--email", "x@other.example", "--name", "X",
                 cwd=config.parent)
    assert done.returncode == 1
    assert "already exists" in one_error_line(done)


def test_seller_alternate_addresses(config):
    add_seller(config)
    code, out = run_cli(config, "seller", "address", "add", "S1", "staff@sellershop.example")
    assert code == 0
    assert json.loads(out) == {"seller_id": "S1", "address": "staff@sellershop.example", "enabled": True}
    assert run_cli(config, "seller", "address", "disable", "S1", "STAFF@sellershop.example")[0] == 0
    assert run_cli(config, "seller", "address", "enable", "S1", "staff@sellershop.example")[0] == 0
    assert run_cli(config, "seller", "address", "add", "S1", "staff@sellershop.example")[0] == 1
    assert run_cli(config, "seller", "address", "add", "S1", SELLER_EMAIL)[0] == 1  # the primary
    assert run_cli(config, "seller", "address", "enable", "S1", "nobody@sellershop.example")[0] == 1
    assert run_cli(config, "seller", "address", "add", "S9", "staff@sellershop.example")[0] == 1


async def test_only_enabled_alternates_may_write(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    add_seller(app.config_path)
    code, out = open_thread(app.config_path)
    buyer_alias = json.loads(out)["buyer_alias"]
    staff = "staff@sellershop.example"
    assert run_cli(app.config_path, "seller", "address", "add", "S1", staff)[0] == 0

    async def write() -> None:
        await send(app.server.port, staff, [buyer_alias],
                   compose(sender=staff, to=buyer_alias, subject="Re: order 112-1234567-1234567"))

    await write()
    [delivered] = await sink.handler.wait_for(1)
    assert staff.encode() not in delivered.data
    assert run_cli(app.config_path, "seller", "address", "disable", "S1", staff)[0] == 0
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await write()
    assert [(e.code, e.message[:5]) for e in refused.value.recipients] == [(550, "5.7.1")]
    assert run_cli(app.config_path, "seller", "address", "enable", "S1", staff)[0] == 0
    await write()
    await sink.handler.wait_for(2)


# --- threads ----------------------------------------------------------------

def test_thread_open_prints_the_thread_and_is_idempotent(config):
    add_seller(config)
    code, out = open_thread(config, "--asin", "B000TEST01", "--fulfillment", "fba")
    assert code == 0
    first = json.loads(out)
    assert set(first) == {"thread_id", "order_id", "buyer_alias", "seller_alias"}
    assert isinstance(first["thread_id"], int) and first["order_id"] == "112-1234567-1234567"
    assert ALIAS.match(first["buyer_alias"]) and ALIAS.match(first["seller_alias"])
    assert first["buyer_alias"] != first["seller_alias"]
    code, out = open_thread(config, "--asin", "B000TEST02")
    assert code == 0 and json.loads(out) == first
    code, out = open_thread(config, order="112-7654321-7654321", buyer="other@buyermail.example")
    second = json.loads(out)
    assert second["thread_id"] != first["thread_id"]
    assert {second["buyer_alias"], second["seller_alias"]}.isdisjoint({first["buyer_alias"], first["seller_alias"]})


def test_an_order_stays_with_its_seller_and_buyer(config):
    add_seller(config)
    add_seller(config, "S2", "owner@othershop.example")
    assert open_thread(config)[0] == 0
    assert open_thread(config, seller="S2")[0] == 1
    assert open_thread(config, buyer="someone.else@buyermail.example")[0] == 1


@pytest.mark.parametrize("args, exit_code, says", [
    (["thread", "open", "--seller", "S9", "--buyer-email", BUYER_EMAIL, "--buyer-name", "Jane",
      "--order", "112-1234567-1234567"], 1, "unknown seller"),
    (["thread", "open", "--seller", "S1", "--buyer-email", "jane@", "--buyer-name", "Jane",
      "--order", "112-1234567-1234567"], 2, "--buyer-email"),
    (["thread", "open", "--seller", "S1", "--buyer-email", "Jane <jane@buyermail.example>",
      "--buyer-name", "Jane", "--order", "112-1234567-1234567"], 2, "--buyer-email"),
    (["thread", "open", "--seller", "S1", "--buyer-email", BUYER_EMAIL, "--buyer-name", "Jane",
      "--order", "1121234567"], 2, "order id"),
    (["thread", "open", "--seller", "S1", "--buyer-email", BUYER_EMAIL, "--buyer-name", "Jane\r\nBcc: x@y.example",
      "--order", "112-1234567-1234567"], 2, "--buyer-name"),
    (["thread", "open", "--seller", "S1", "--buyer-email", BUYER_EMAIL, "--buyer-name", "Jane",
      "--order", "112-1234567-1234567", "--asin", "b000test01"], 2, "ASIN"),
    (["thread", "open", "--seller", "S1", "--buyer-email", f"abc@{ALIAS_DOMAIN}", "--buyer-name", "Jane",
      "--order", "112-1234567-1234567"], 2, ALIAS_DOMAIN),
    (["seller", "add", "S2", "--email", "owner@", "--name", "Two"], 2, "--email"),
    (["seller", "add", "S2", "--email", "owner@two.example", "--name", "Two\nShop"], 2, "--name"),
    (["seller", "add", "S2", "--email", f"owner@{ALIAS_DOMAIN}", "--name", "Two"], 2, ALIAS_DOMAIN),
    (["seller", "add", "bad id", "--email", "owner@two.example", "--name", "Two"], 2, "seller id"),
    (["seller", "address", "add", "S1", "staff@@x.example"], 2, "address"),
    (["seller", "address", "add", "S9", "staff@sellershop.example"], 1, "unknown seller"),
    (["message", "list", "--since", "yesterday"], 2, "date"),
    (["message", "mark-no-response", "12x"], 2, "message id"),
    (["message", "mark-no-response", "999999"], 1, "999999"),
    (["metrics", "response-time", "--seller", "S9"], 1, "unknown seller"),
    (["metrics", "response-time", "--seller", "S1", "--days", "0"], 2, "days"),
    (["metrics", "response-time", "--seller", "S1", "--days", "1000000"], 2, "days"),
    (["message", "list", "--since", "0001-01-01T00:00:00+01:00"], 2, "date"),
    (["message", "list", "--until", "2024-02-30"], 2, "date"),
    (["message", "list", "--reply-status", "unanswered"], 2, "reply-status"),
    (["frobnicate"], 2, "frobnicate"),
    ([], 2, "command"),
])
def test_bad_input_ends_with_one_line(seller_config, args, exit_code, says):
    done = relay("--config", str(seller_config), *args, cwd=seller_config.parent)
    assert done.returncode == exit_code, done.stderr
    assert says in one_error_line(done)


@pytest.mark.parametrize("text, says", [
    (None, "not found"),
    ("[smtp]\nport = \n", "TOML"),
    ("[smtp]\nprot = 25\n", "prot"),
    ("[smtpd]\nport = 25\n", "smtpd"),
    ("[delivery]\nmode = \"carrier-pigeon\"\n", "mode"),
    ("[smtp]\nport = 99999\n", "port"),
    ("\xff\xfe", "TOML"),
])
def test_a_bad_config_ends_with_one_line(tmp_path, text, says):
    path = tmp_path / "relay.toml"
    if text is not None:
        path.write_bytes(text.encode("latin-1"))
    done = relay("--config", str(path), "init", cwd=tmp_path)
    assert done.returncode == 1
    assert says in one_error_line(done)


def test_a_key_file_that_cannot_be_created_ends_with_one_line(tmp_path):
    path = write_config(tmp_path, extra="")
    path.write_text(path.read_text().replace('key_file = "keys/alias.keys"', 'key_file = "relay.toml/alias.keys"'))
    assert "key file" in one_error_line(relay("--config", str(path), "init", cwd=tmp_path))


def test_no_config_anywhere_says_so(tmp_path):
    assert "relay.toml" in one_error_line(relay("init", cwd=tmp_path))


# --- where the config is found, and what it is relative to --------------------

def test_relay_config_variable_and_relative_paths(tmp_path):
    conf_dir, elsewhere = tmp_path / "etc", tmp_path / "work"
    conf_dir.mkdir()
    elsewhere.mkdir()
    path = write_config(conf_dir)
    done = relay("init", cwd=elsewhere, env={"RELAY_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    assert (conf_dir / "keys" / "alias.keys").is_file() and (conf_dir / "data" / "relay.db").is_file()
    assert list(elsewhere.iterdir()) == []
    done = relay("seller", "add", "S1", "--email", SELLER_EMAIL, "--name", "Shop", cwd=elsewhere,
                 env={"RELAY_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    # --config wins over the variable; a relative --config is read from the working directory.
    other = write_config(elsewhere)
    assert relay("--config", "relay.toml", "init", cwd=elsewhere, env={"RELAY_CONFIG": str(path)}).returncode == 0
    done = relay("--config", "relay.toml", "seller", "add", "S1", "--email", SELLER_EMAIL, "--name", "Shop",
                 cwd=elsewhere, env={"RELAY_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    assert (other.parent / "data" / "relay.db").is_file()


def test_relay_toml_in_the_working_directory_is_the_default(tmp_path):
    write_config(tmp_path)
    done = relay("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "keys" / "alias.keys").is_file()


# --- pip install, outside the checkout ------------------------------------------

def _build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so the checkout gains no build/ folder."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("relay", "aliasing", "policy", "storage", "migrations"):
        shutil.copytree(CHECKOUT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, src / name)
    # Without network access only the local setuptools can build; it needs bdist_wheel.
    local = importlib.util.find_spec("wheel") is not None or \
        tuple(int(x) for x in importlib.metadata.version("setuptools").split(".")[:2]) >= (70, 1)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(src)]
    done = subprocess.run(cmd + (["--no-build-isolation"] if local else []), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    return wheel


def test_pip_install_works_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("migrations/env.py", "migrations/script.py.mako", "relay/cli.py", "relay/demo.py",
                   "aliasing/codec.py", "policy/registry.py", "storage/db.py"):
        assert needed in names, needed
    assert any(re.fullmatch(r"migrations/versions/\w+\.py", n) for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)

    target, home = tmp_path / "site", tmp_path / "home"
    home.mkdir()
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    path = write_config(home)
    env = {**os.environ, "PYTHONPATH": str(target)}
    script = ("import sys, relay, migrations; from relay.cli import main;"
              "print(relay.__file__, migrations.__file__, file=sys.stderr); sys.exit(main(sys.argv[1:]))")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", script, "--config", str(path), *args], cwd=home, env=env,
                              capture_output=True, text=True, timeout=120)

    done = run("init")
    assert done.returncode == 0, done.stderr
    installed_from = done.stderr.split()
    assert all(Path(p).is_relative_to(target) for p in installed_from), installed_from
    assert (home / "data" / "relay.db").is_file()
    assert run("seller", "add", "S1", "--email", SELLER_EMAIL, "--name", "Shop").returncode == 0
    done = run("thread", "open", "--seller", "S1", "--buyer-email", BUYER_EMAIL, "--buyer-name", "Jane",
               "--order", "112-1234567-1234567")
    assert done.returncode == 0, done.stderr
    assert ALIAS.match(json.loads(done.stdout)["buyer_alias"])
