"""Configuration: `relay.toml` read once into frozen dataclasses.

`load(path)` reads the file, checks every key and returns a `Config`. Any
problem (missing file, bad TOML, unknown section or key, a value of the
wrong type) raises `ConfigError` with one line that names the key, so the
command line can print it and exit without a traceback.

Relative paths inside the file (key files, a SQLite database) are relative
to the folder that holds the config file, not to the working directory.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aliasing.addresses import AddressError, normalise_domain, parse_address

_SELECTOR = re.compile(r"^(?=.{1,40}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")

# 10 MiB of attachments grows by 4/3 in base64, plus line breaks and headers.
DEFAULT_MAX_MESSAGE_BYTES = 15 * 1024 * 1024


class ConfigError(Exception):
    """The config cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    hostname: str = "relay.marketplace.example"
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    processes: int = 1
    timeout: float = 300.0
    shutdown_grace: float = 30.0
    tls_cert: Path | None = None        # both or neither: STARTTLS is offered with them
    tls_key: Path | None = None
    require_tls: bool = False           # MAIL only after STARTTLS


@dataclass(frozen=True)
class LimitsConfig:
    """Abuse limits; for the rates, 0 switches that limit off."""

    per_sender_per_hour: int = 300
    per_thread_per_hour: int = 60
    per_ip_per_minute: int = 120
    max_connections: int = 100
    max_recipients: int = 20
    max_header_bytes: int = 64 * 1024
    session_timeout: float = 1200.0


@dataclass(frozen=True)
class AliasConfig:
    domain: str = "marketplace.example"
    key_file: Path = Path("var/alias.keys")


@dataclass(frozen=True)
class StorageConfig:
    url: str = "sqlite:///var/relay.db"
    encryption_key_file: Path = Path("var/storage.keys")
    encrypt: bool = True


@dataclass(frozen=True)
class DeliveryConfig:
    mode: str = "mx"
    smarthost: tuple[str, int] | None = None
    mx_port: int = 25
    retry_schedule: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400)
    max_age: float = 5 * 24 * 3600
    concurrency: int = 20
    timeout: float = 60.0
    lease_seconds: float = 300.0
    poll_interval: float = 5.0
    tls_ca_file: Path | None = None                 # extra trusted CAs (PEM) for outbound TLS
    require_tls_domains: tuple[str, ...] = ()       # verified TLS or no delivery


@dataclass(frozen=True)
class DkimConfig:
    selector: str = "relay"
    key_file: Path = Path("var/dkim.key")
    sign: bool = True


@dataclass(frozen=True)
class DnsConfig:
    nameservers: tuple[tuple[str, int], ...] = ()
    timeout: float = 5.0


@dataclass(frozen=True)
class AuthConfig:
    mode: str = "strict"                     # strict | relaxed | off (relay/auth/check.py)
    relaxed_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class MarketplaceConfig:
    name: str = "Marketplace"
    notices_from: str = "no-reply@marketplace.example"


@dataclass(frozen=True)
class PolicyConfig:
    """`[policy]`: the content rules (`policy/registry.py`) and their tuning."""

    enabled: bool = True
    disabled_rules: tuple[str, ...] = ()
    link_allow_domains: tuple[str, ...] = ()
    promotion_threshold: float = 3.0
    reviews_threshold: float = 3.0
    payment_threshold: float = 3.0
    data_dir: Path | None = None  # files here replace the shipped lists of the same name


@dataclass(frozen=True)
class Config:
    path: Path
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    aliases: AliasConfig = field(default_factory=AliasConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    marketplace: MarketplaceConfig = field(default_factory=MarketplaceConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    dkim: DkimConfig = field(default_factory=DkimConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)


def default_path() -> Path:
    """`$RELAY_CONFIG`, else `./relay.toml`."""
    return Path(os.environ.get("RELAY_CONFIG") or "relay.toml")


def load(path: Path | str) -> Config:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(data, path)


def from_dict(data: dict[str, Any], path: Path) -> Config:
    """Build a Config from parsed TOML; `path` anchors relative paths."""
    path = path.resolve()
    base = path.parent
    # Only what the relay acts on: a setting it would silently ignore is an error.
    sections = {"smtp", "limits", "aliases", "storage", "delivery", "dns", "marketplace", "auth", "dkim",
                "policy"}
    for name in data:
        if name not in sections:
            raise ConfigError(f"{path.name}: unknown section [{name}]")
    r = _Reader(data, path.name)
    smtp = SmtpConfig(
        host=r.str("smtp", "host", SmtpConfig.host),
        port=r.port("smtp", "port", SmtpConfig.port),
        hostname=r.hostname("smtp", "hostname", SmtpConfig.hostname),
        max_message_bytes=r.int("smtp", "max_message_bytes", SmtpConfig.max_message_bytes, minimum=1024),
        processes=r.int("smtp", "processes", SmtpConfig.processes, minimum=1),
        timeout=r.number("smtp", "timeout", SmtpConfig.timeout),
        shutdown_grace=r.number("smtp", "shutdown_grace", SmtpConfig.shutdown_grace),
        **_tls(r, base),
    )
    limits = _limits(r)
    aliases = AliasConfig(
        domain=r.domain("aliases", "domain", AliasConfig.domain),
        key_file=_resolve(base, r.str("aliases", "key_file", str(AliasConfig.key_file))),
    )
    storage = StorageConfig(
        url=_storage_url(base, r.str("storage", "url", StorageConfig.url)),
        encryption_key_file=_resolve(base, r.str("storage", "encryption_key_file",
                                                  str(StorageConfig.encryption_key_file))),
        encrypt=r.bool("storage", "encrypt", StorageConfig.encrypt),
    )
    delivery = _delivery(r, base)
    dkim = DkimConfig(
        selector=r.selector("dkim", "selector", DkimConfig.selector),
        key_file=_resolve(base, r.str("dkim", "key_file", str(DkimConfig.key_file))),
        sign=r.bool("dkim", "sign", DkimConfig.sign),
    )
    dns = DnsConfig(
        # The resolver's own address cannot be looked up: an IP address is needed.
        nameservers=tuple(_hostport(f"[dns] nameservers entry {v!r}", v, 53, ip_only=True)
                          for v in r.str_list("dns", "nameservers", [])),
        timeout=r.number("dns", "timeout", DnsConfig.timeout),
    )
    marketplace = MarketplaceConfig(
        name=r.header_text("marketplace", "name", MarketplaceConfig.name),
        notices_from=r.address("marketplace", "notices_from", MarketplaceConfig.notices_from),
    )
    auth = _auth(r)
    policy = _policy(r, base)
    r.check_unknown(known={
        "smtp": {"host", "port", "hostname", "max_message_bytes", "processes",
                 "timeout", "shutdown_grace", "tls_cert", "tls_key", "require_tls"},
        "limits": {"per_sender_per_hour", "per_thread_per_hour", "per_ip_per_minute", "max_connections",
                   "max_recipients", "max_header_bytes", "session_timeout"},
        "aliases": {"domain", "key_file"},
        "storage": {"url", "encryption_key_file", "encrypt"},
        "delivery": {"mode", "smarthost", "mx_port", "retry_schedule", "max_age",
                     "concurrency", "timeout", "lease_seconds", "poll_interval",
                     "tls_ca_file", "require_tls_domains"},
        "dns": {"nameservers", "timeout"},
        "marketplace": {"name", "notices_from"},
        "auth": {"mode", "relaxed_domains"},
        "dkim": {"selector", "key_file", "sign"},
        "policy": {"enabled", "disabled_rules", "link_allow_domains", "promotion_threshold",
                   "reviews_threshold", "payment_threshold", "data_dir"},
    })
    return Config(path=path, smtp=smtp, limits=limits, aliases=aliases, storage=storage,
                  delivery=delivery, dns=dns, marketplace=marketplace, auth=auth,
                  dkim=dkim, policy=policy)


def _auth(r: _Reader) -> AuthConfig:
    mode = r.str("auth", "mode", AuthConfig.mode)
    if mode not in ("strict", "relaxed", "off"):
        raise ConfigError(f'[auth] mode must be "strict", "relaxed" or "off", not {mode!r}')
    domains = r.str_list("auth", "relaxed_domains", [])
    return AuthConfig(mode=mode, relaxed_domains=tuple(
        r.domain_value("auth", "relaxed_domains", d) for d in domains))


def _tls(r: _Reader, base: Path) -> dict[str, Any]:
    """`tls_cert` and `tls_key` (both or neither) and `require_tls`, which needs them."""
    cert = r.str("smtp", "tls_cert", "")
    key = r.str("smtp", "tls_key", "")
    if bool(cert) != bool(key):
        raise ConfigError("[smtp] tls_cert and tls_key go together: set both or neither")
    require = r.bool("smtp", "require_tls", SmtpConfig.require_tls)
    if require and not cert:
        raise ConfigError("[smtp] require_tls = true needs tls_cert and tls_key")
    return dict(tls_cert=_resolve(base, cert) if cert else None,
                tls_key=_resolve(base, key) if key else None, require_tls=require)


def _limits(r: _Reader) -> LimitsConfig:
    d = LimitsConfig
    return LimitsConfig(
        per_sender_per_hour=r.int("limits", "per_sender_per_hour", d.per_sender_per_hour),
        per_thread_per_hour=r.int("limits", "per_thread_per_hour", d.per_thread_per_hour),
        per_ip_per_minute=r.int("limits", "per_ip_per_minute", d.per_ip_per_minute),
        max_connections=r.int("limits", "max_connections", d.max_connections, minimum=1),
        max_recipients=r.int("limits", "max_recipients", d.max_recipients, minimum=1),
        max_header_bytes=r.int("limits", "max_header_bytes", d.max_header_bytes, minimum=1024),
        session_timeout=r.number("limits", "session_timeout", d.session_timeout),
    )


def _delivery(r: _Reader, base: Path) -> DeliveryConfig:
    mode = r.str("delivery", "mode", DeliveryConfig.mode)
    if mode not in ("mx", "smarthost"):
        raise ConfigError(f'[delivery] mode must be "mx" or "smarthost", not {mode!r}')
    smarthost_text = r.str("delivery", "smarthost", "")
    smarthost = _hostport("[delivery] smarthost", smarthost_text, 25) if smarthost_text else None
    if mode == "smarthost" and smarthost is None:
        raise ConfigError('[delivery] mode = "smarthost" needs smarthost = "host:port"')
    schedule = r.number_list("delivery", "retry_schedule", list(DeliveryConfig.retry_schedule))
    if not schedule or any(not (0 < s < math.inf) for s in schedule):
        raise ConfigError("[delivery] retry_schedule must be a non-empty list of positive seconds")
    return DeliveryConfig(
        mode=mode,
        smarthost=smarthost,
        mx_port=r.port("delivery", "mx_port", DeliveryConfig.mx_port, minimum=1),
        retry_schedule=tuple(schedule),
        max_age=r.number("delivery", "max_age", DeliveryConfig.max_age),
        concurrency=r.int("delivery", "concurrency", DeliveryConfig.concurrency, minimum=1),
        timeout=r.number("delivery", "timeout", DeliveryConfig.timeout),
        lease_seconds=r.number("delivery", "lease_seconds", DeliveryConfig.lease_seconds),
        poll_interval=r.number("delivery", "poll_interval", DeliveryConfig.poll_interval),
        tls_ca_file=_ca_file(base, r.str("delivery", "tls_ca_file", "")),
        require_tls_domains=tuple(r.domain_list("delivery", "require_tls_domains")),
    )


def _ca_file(base: Path, value: str) -> Path | None:
    """A PEM file of CAs to trust for outbound TLS; it must exist (a typo would fail every delivery)."""
    if not value:
        return None
    path = _resolve(base, value)
    if not path.is_file():
        raise ConfigError(f"[delivery] tls_ca_file: no such file {path}")
    return path


def _policy(r: _Reader, base: Path) -> PolicyConfig:
    from policy.registry import RULE_NAMES  # the rule names live with the rules

    disabled = r.str_list("policy", "disabled_rules", [])
    for name in disabled:
        if name not in RULE_NAMES:
            raise ConfigError(f"[policy] disabled_rules: unknown rule {name!r} "
                              f"(rules: {', '.join(RULE_NAMES)})")
    domains = tuple(r.domain_value("policy", "link_allow_domains", d)
                    for d in r.str_list("policy", "link_allow_domains", []))
    data_dir_text = r.str("policy", "data_dir", "")
    data_dir = _resolve(base, data_dir_text) if data_dir_text else None
    if data_dir is not None and not data_dir.is_dir():
        raise ConfigError(f"[policy] data_dir is not a folder: {data_dir}")
    return PolicyConfig(
        enabled=r.bool("policy", "enabled", PolicyConfig.enabled),
        disabled_rules=tuple(disabled),
        link_allow_domains=domains,
        promotion_threshold=r.score("policy", "promotion_threshold", PolicyConfig.promotion_threshold),
        reviews_threshold=r.score("policy", "reviews_threshold", PolicyConfig.reviews_threshold),
        payment_threshold=r.score("policy", "payment_threshold", PolicyConfig.payment_threshold),
        data_dir=data_dir,
    )


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _storage_url(base: Path, url: str) -> str:
    """Anchor a relative SQLite file at the config's folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix):]
        if rest and rest != ":memory:":
            return prefix + str(base / rest)
    return url


def _hostport(what: str, value: str, default_port: int, ip_only: bool = False) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address."""
    text = value.strip()
    host, port = text, default_port
    if text.startswith("["):  # [::1]:53
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"{what}: unclosed '[' in {value!r}")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"{what}: expected host:port, got {value!r}")
            port = _port_number(what, rest[1:])
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port_number(what, port_text)
    if not host:
        raise ConfigError(f"{what}: missing host in {value!r}")
    if ip_only or ":" in host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"{what}: {host!r} is not an IP address") from None
    elif not _HOSTNAME.match(host):
        raise ConfigError(f"{what}: {host!r} is not a host name")
    return host, port


def _port_number(what: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{what}: port must be 1-65535, got {text!r}")
    return int(text)


class _Reader:
    """Typed access to the TOML tree, with errors that name the key."""

    def __init__(self, data: dict[str, Any], filename: str):
        self.data = data
        self.filename = filename

    def _get(self, section: str, key: str, default: Any) -> Any:
        sec = self.data.get(section, {})
        if not isinstance(sec, dict):
            raise ConfigError(f"{self.filename}: [{section}] must be a table")
        return sec.get(key, default)

    def check_unknown(self, known: dict[str, set[str]]) -> None:
        for section, keys in known.items():
            sec = self.data.get(section, {})
            for key in sec:
                if key not in keys:
                    raise ConfigError(f"{self.filename}: unknown key [{section}] {key}")

    def str(self, section: str, key: str, default: str) -> str:
        v = self._get(section, key, default)
        if not isinstance(v, str):
            raise ConfigError(f"[{section}] {key} must be a string")
        return v

    def header_text(self, section: str, key: str, default: str) -> str:
        v = self.str(section, key, default)
        if any(c in v for c in "\r\n\0") or not v.strip():
            raise ConfigError(f"[{section}] {key} must be one non-empty line")
        return v.strip()

    def int(self, section: str, key: str, default: int, minimum: int = 0) -> int:
        v = self._get(section, key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"[{section}] {key} must be a whole number >= {minimum}")
        return v

    def bool(self, section: str, key: str, default: bool) -> bool:
        v = self._get(section, key, default)
        if not isinstance(v, bool):
            raise ConfigError(f"[{section}] {key} must be true or false")
        return v

    def port(self, section: str, key: str, default: int, minimum: int = 0) -> int:
        """`minimum` 0 allows "any free port" (where the relay listens)."""
        v = self._get(section, key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v < 65536:
            raise ConfigError(f"[{section}] {key} must be a port number {minimum}-65535")
        return v

    def hostname(self, section: str, key: str, default: str) -> str:
        v = self.str(section, key, default)
        if not _HOSTNAME.match(v):
            raise ConfigError(f"[{section}] {key} must be a host name (letters, digits, '.', '-')")
        return v

    def number(self, section: str, key: str, default: float) -> float:
        v = self._get(section, key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
            raise ConfigError(f"[{section}] {key} must be a positive number of seconds")
        return float(v)

    def number_list(self, section: str, key: str, default: list[float]) -> list[float]:
        v = self._get(section, key, default)
        if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
            raise ConfigError(f"[{section}] {key} must be a list of numbers")
        return [float(x) for x in v]

    def str_list(self, section: str, key: str, default: list[str]) -> list[str]:
        v = self._get(section, key, default)
        if not isinstance(v, list) or any(not isinstance(x, str) for x in v):
            raise ConfigError(f"[{section}] {key} must be a list of strings")
        return v

    def selector(self, section: str, key: str, default: str) -> str:
        """A DKIM selector: DNS labels, short enough for a date suffix on rotation."""
        v = self.str(section, key, default)
        if not _SELECTOR.match(v):
            raise ConfigError(f"[{section}] {key} must be 1-40 letters, digits, '-' or '.' "
                              f"(a DNS name), not {v[:60]!r}")
        return v.lower()

    def domain_list(self, section: str, key: str) -> list[str]:
        out = []
        for v in self.str_list(section, key, []):
            try:
                out.append(parse_address(f"postmaster@{v.strip()}").domain)
            except AddressError:
                raise ConfigError(f"[{section}] {key}: {v[:80]!r} is not a domain") from None
        return out


    def score(self, section: str, key: str, default: float) -> float:
        v = self._get(section, key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
            raise ConfigError(f"[{section}] {key} must be a positive number")
        return float(v)


    def domain(self, section: str, key: str, default: str) -> str:
        return self.domain_value(section, key, self.str(section, key, default))

    def domain_value(self, section: str, key: str, value: str) -> str:
        """One domain, e.g. an entry of a list, normalised as addresses are."""
        try:
            return normalise_domain(value.strip())
        except AddressError:
            raise ConfigError(f"[{section}] {key}: not a valid domain: {value[:80]!r}") from None

    def address(self, section: str, key: str, default: str) -> str:
        v = self.str(section, key, default)
        try:
            return str(parse_address(v))
        except AddressError as exc:
            raise ConfigError(f"[{section}] {key}: {exc}") from None
