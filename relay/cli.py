"""The `relay` command line.

    relay [--config PATH] COMMAND ...

PATH defaults to `$RELAY_CONFIG`, then `./relay.toml`. Every command that
prints data prints JSON (one object, or one object a line for lists). Bad
input of any kind ends with exit status 2 (usage) or 1 (the request
cannot be done) and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aliasing.addresses import AddressError, parse_address
from aliasing.keys import KeyFileError, add_key, load_key_ring
from relay import config as config_mod
from relay import signing, supervisor
from relay.app import initialize, open_existing, open_sealer, serve
from relay.config import Config, ConfigError
from storage import directory, messages
from storage.db import DatabaseError
from storage.directory import DirectoryError
from storage.sealing import SealError, add_storage_key
from storage.timeutil import to_iso, to_naive_utc

ORDER_ID = re.compile(r"^\d{3}-\d{7}-\d{7}$")
ASIN = re.compile(r"^[A-Z0-9]{10}$")
SELLER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_DAYS = 36500


class UsageError(Exception):
    """Bad input on the command line: exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            raise UsageError("missing command (see 'relay --help')")
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.func is cmd_demo:
            return cmd_demo(args, None) or 0
        config = config_mod.load(args.config or config_mod.default_path())
        return args.func(args, config) or 0
    except UsageError as exc:
        print(f"relay: error: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, KeyFileError, DatabaseError, DirectoryError, AddressError, SealError) as exc:
        print(f"relay: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `relay message list | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush is quiet
        return 141


def build_parser() -> Parser:
    p = Parser(prog="relay", description="Marketplace Relay: buyer-seller mail through aliases.")
    p.add_argument("--config", type=Path, help="config file (default: $RELAY_CONFIG, then ./relay.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(parser_class=Parser, metavar="COMMAND")

    sub.add_parser("init", help="create or upgrade the database and key files").set_defaults(func=cmd_init)
    sub.add_parser("serve", help="run the SMTP server and delivery worker").set_defaults(func=cmd_serve)
    sub.add_parser("demo", help="show a buyer and a seller writing through the relay").set_defaults(func=cmd_demo)

    seller = sub.add_parser("seller", help="manage sellers").add_subparsers(parser_class=Parser, metavar="ACTION")
    s_add = seller.add_parser("add", help="add a seller")
    s_add.add_argument("seller_id")
    s_add.add_argument("--email", required=True)
    s_add.add_argument("--name", required=True)
    s_add.set_defaults(func=cmd_seller_add)
    address = seller.add_parser("address", help="alternate sending addresses")
    address.add_argument("action", choices=["add", "enable", "disable"])
    address.add_argument("seller_id")
    address.add_argument("address")
    address.set_defaults(func=cmd_seller_address)

    thread = sub.add_parser("thread", help="conversations").add_subparsers(parser_class=Parser, metavar="ACTION")
    t_open = thread.add_parser("open", help="open (or find) the thread of an order")
    t_open.add_argument("--seller", required=True)
    t_open.add_argument("--buyer-email", required=True)
    t_open.add_argument("--buyer-name", required=True)
    t_open.add_argument("--order", required=True)
    t_open.add_argument("--asin", action="append", default=[])
    t_open.add_argument("--fulfillment", choices=["mfn", "fba"], default="mfn")
    t_open.set_defaults(func=cmd_thread_open)
    for action, what in (("close", "stop accepting mail for the thread's aliases"),
                         ("reopen", "accept mail for a closed thread's aliases again")):
        t_state = thread.add_parser(action, help=what)
        t_state.add_argument("thread_id")
        t_state.set_defaults(func=cmd_thread_close, closed=action == "close")

    message = sub.add_parser("message", help="the message log").add_subparsers(parser_class=Parser, metavar="ACTION")
    m_list = message.add_parser("list", help="list conversation messages, newest first")
    m_list.add_argument("--order")
    m_list.add_argument("--asin")
    m_list.add_argument("--email")
    m_list.add_argument("--since")
    m_list.add_argument("--until")
    m_list.add_argument("--reply-status", choices=["needs-reply", "replied", "no-response-needed"])
    m_list.add_argument("--with-attachments", action="store_true")
    m_list.set_defaults(func=cmd_message_list)
    m_mark = message.add_parser("mark-no-response", help="mark a message as needing no response")
    m_mark.add_argument("message_id")
    m_mark.set_defaults(func=cmd_mark_no_response)

    keys = sub.add_parser("keys", help="the relay's keys").add_subparsers(parser_class=Parser, metavar="ACTION")
    keys.add_parser("dkim", help="print the DKIM record to publish in DNS").set_defaults(func=cmd_keys_dkim)
    k_rotate = keys.add_parser("rotate", help="rotate a key: " + ", ".join(ROTATIONS))
    k_rotate.add_argument("which", choices=list(ROTATIONS))
    k_rotate.set_defaults(func=cmd_keys_rotate)

    metrics = sub.add_parser("metrics", help="performance figures").add_subparsers(parser_class=Parser, metavar="FIGURE")
    rt = metrics.add_parser("response-time", help="share of buyer messages answered within 24 hours")
    rt.add_argument("--seller", required=True)
    rt.add_argument("--days", type=_days, default=90)
    rt.set_defaults(func=cmd_response_time)
    return p


# --- validation -----------------------------------------------------------

def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _days(text: str) -> int:
    days = _positive_int(text)
    if days > MAX_DAYS:  # further back than datetime reaches
        raise argparse.ArgumentTypeError(f"expected at most {MAX_DAYS} days, got {text!r}")
    return days


def _seller_id(text: str) -> str:
    if not SELLER_ID.fullmatch(text):  # fullmatch: "$" would let a final line break through
        raise UsageError(f"invalid seller id {text[:40]!r}: letters, digits, '.', '_' and '-', at most 64")
    return text


def _name(text: str, what: str) -> str:
    if any(not c.isprintable() for c in text):
        raise UsageError(f"{what} must be one line of printable text")
    text = text.strip()
    if not text or len(text) > 200:
        raise UsageError(f"{what} must be 1 to 200 characters")
    return text


def _address(text: str, what: str):
    if any(not c.isprintable() for c in text):  # parse_address would strip a trailing line break
        raise UsageError(f"{what}: an address is one line of printable text")
    try:
        return parse_address(text)
    except AddressError as exc:
        raise UsageError(f"{what}: {exc}") from None


def _real_address(text: str, what: str, config: Config):
    """A participant's own address: never one of the relay's aliases (mail would loop)."""
    address = _address(text, what)
    if address.domain == config.aliases.domain:
        raise UsageError(f"{what}: {address} is in the alias domain {config.aliases.domain}; "
                         "give the real address")
    return address


def _order_id(text: str) -> str:
    if not ORDER_ID.fullmatch(text):
        raise UsageError(f"invalid order id {text[:40]!r}: expected the form 123-1234567-1234567")
    return text


def _asin(text: str) -> str:
    if not ASIN.fullmatch(text):
        raise UsageError(f"invalid ASIN {text[:40]!r}: expected 10 capital letters or digits")
    return text


def _date(text: str, end_of_day: bool) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = datetime.fromisoformat(text)
            return day + timedelta(days=1, microseconds=-1) if end_of_day else day
        return to_naive_utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError):  # OverflowError: an offset that leaves year 1..9999
        raise UsageError(f"invalid date {text[:40]!r}: expected YYYY-MM-DD or an ISO 8601 timestamp") from None


def _print_json(value) -> None:
    print(json.dumps(value, ensure_ascii=False))


# --- commands -------------------------------------------------------------

def cmd_init(args, config: Config) -> int:
    initialize(config).close()
    load_key_ring(config.aliases.key_file)  # an existing file may be unreadable or too open
    signing.load_key(config.dkim.key_file)
    print(f"relay: initialized ({config.storage.url.split(':', 1)[0]} database, "
          f"keys in {config.aliases.key_file.parent})")
    return 0


def cmd_serve(args, config: Config) -> int:
    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        # aiosmtpd logs every command at INFO: a line per command is costly
        # and belongs to debugging, not to a running relay.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    if config.smtp.processes > 1:
        return supervisor.run(config, config.smtp.processes)
    asyncio.run(serve(config))
    return 0


def cmd_demo(args, _config) -> int:
    from relay.demo import run_demo
    return asyncio.run(run_demo())


def _with_db(config: Config, fn):
    return _with_store(config, lambda conn, keyring, _sealer: fn(conn, keyring))


def _with_store(config: Config, fn):
    """`fn(conn, alias key ring, storage sealer)` in one transaction."""
    db, keyring = open_existing(config)
    try:
        sealer = open_sealer(config)
        return db.write_sync(lambda conn: fn(conn, keyring, sealer))
    finally:
        db.close()


def cmd_seller_add(args, config: Config) -> int:
    seller_id = _seller_id(args.seller_id)
    email = _real_address(args.email, "--email", config)
    name = _name(args.name, "--name")
    _with_store(config, lambda c, _k, s: directory.add_seller(c, s, seller_id, email, name))
    _print_json({"seller_id": seller_id, "email": str(email), "name": name})
    return 0


def cmd_seller_address(args, config: Config) -> int:
    seller_id = _seller_id(args.seller_id)
    email = _real_address(args.address, "address", config)
    if args.action == "add":
        _with_store(config, lambda c, _k, s: directory.add_address(c, s, seller_id, email))
    else:
        enabled = args.action == "enable"
        _with_store(config, lambda c, _k, s: directory.set_address_enabled(c, s, seller_id, email, enabled))
    _print_json({"seller_id": seller_id, "address": str(email),
                 "enabled": args.action != "disable"})
    return 0


def cmd_thread_open(args, config: Config) -> int:
    seller_id = _seller_id(args.seller)
    buyer = _real_address(args.buyer_email, "--buyer-email", config)
    buyer_name = _name(args.buyer_name, "--buyer-name")
    order_id = _order_id(args.order)
    asins = [_asin(a) for a in args.asin]
    info = _with_store(config, lambda c, k, s: directory.open_thread(
        c, k, s, seller_id=seller_id, buyer_email=buyer, buyer_name=buyer_name, order_id=order_id,
        asins=asins, fulfillment=args.fulfillment))
    domain = config.aliases.domain
    _print_json({"thread_id": info.id, "order_id": info.order_id,
                 "buyer_alias": f"{info.buyer_alias}@{domain}",
                 "seller_alias": f"{info.seller_alias}@{domain}"})
    return 0


def cmd_thread_close(args, config: Config) -> int:
    if not args.thread_id.isdigit():
        raise UsageError(f"invalid thread id {args.thread_id[:40]!r}: expected a number")
    thread_id = int(args.thread_id)
    closed_at = _with_db(config, lambda c, _k: directory.set_thread_closed(c, thread_id, args.closed))
    _print_json({"thread_id": thread_id, "closed": closed_at is not None,
                 "closed_at": to_iso(closed_at)})
    return 0


def cmd_message_list(args, config: Config) -> int:
    address = alias = None
    if args.email:
        address = _address(args.email, "--email")
        if address.domain == config.aliases.domain:
            alias = address.local.lower()
    f = messages.ListFilter(
        order_id=_order_id(args.order) if args.order else None,
        asin=_asin(args.asin) if args.asin else None, alias=alias,
        since=_date(args.since, end_of_day=False) if args.since else None,
        until=_date(args.until, end_of_day=True) if args.until else None,
        reply_status=args.reply_status, with_attachments=args.with_attachments)

    def listing(conn, _keyring, sealer):
        email_key = sealer.index(address.key) if address else None  # the blind index
        return messages.list_messages(conn, dataclasses.replace(f, email_key=email_key), sealer)
    for row in _with_store(config, listing):
        _print_json(row)
    return 0


def cmd_mark_no_response(args, config: Config) -> int:
    if not args.message_id.isdigit():
        raise UsageError(f"invalid message id {args.message_id[:40]!r}: expected a number")
    message_id = int(args.message_id)
    if not _with_db(config, lambda c, _k: messages.mark_no_response(c, message_id)):
        raise DirectoryError(f"no conversation message with id {message_id}")
    _print_json({"id": message_id, "no_response_needed": True})
    return 0


def cmd_response_time(args, config: Config) -> int:
    seller_id = _seller_id(args.seller)

    def figure(conn, _k):
        directory.require_seller(conn, seller_id)
        return messages.response_time(conn, seller_id, args.days)
    _print_json(_with_db(config, figure))
    return 0


def cmd_keys_dkim(args, config: Config) -> int:
    print(signing.dns_record(signing.load_key(config.dkim.key_file), config.aliases.domain))
    return 0


def cmd_keys_rotate(args, config: Config) -> int:
    _print_json(ROTATIONS[args.which](config))
    return 0


def _rotate_alias(config: Config) -> dict:
    """New aliases use the new key; aliases made under older keys keep working."""
    load_key_ring(config.aliases.key_file)  # refuse a broken or too open file before appending
    return {"rotated": "alias", "key_id": add_key(config.aliases.key_file)}


def _rotate_dkim(config: Config) -> dict:
    """A new key under a new selector, used at once: its record must be published now."""
    key = signing.rotate(config.dkim.key_file, config.dkim.selector, datetime.now(timezone.utc).date())
    return {"rotated": "dkim", "selector": key.selector,
            "record": signing.dns_record(key, config.aliases.domain),
            "note": "publish this record now; keep the previous selector's record for a week"}


def _rotate_storage(config: Config) -> dict:
    """New data is sealed with the new key at once; older rows move over in the background."""
    open_existing(config)[0].close()  # every key file exists and is private
    return {"rotated": "storage", "key_id": add_storage_key(config.storage.encryption_key_file)}


# `relay keys rotate WHICH`: one function per key kind, each returning what to print.
ROTATIONS = {"alias": _rotate_alias, "storage": _rotate_storage, "dkim": _rotate_dkim}


if __name__ == "__main__":
    sys.exit(main())
