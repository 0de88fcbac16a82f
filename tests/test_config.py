"""`relay.toml`: defaults, paths relative to the file, and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay import config as config_mod
from relay.config import ConfigError

CHECKOUT = Path(__file__).resolve().parent.parent


def load(tmp_path: Path, text: str) -> config_mod.Config:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return config_mod.load(path)


def test_the_shipped_relay_toml_loads_with_the_documented_defaults():
    c = config_mod.load(CHECKOUT / "relay.toml")
    assert (c.smtp.host, c.smtp.port) == ("127.0.0.1", 2525)
    assert c.smtp.max_message_bytes >= (10 * 1024 * 1024) * 4 // 3
    assert c.delivery.mode == "mx" and c.delivery.mx_port == 25 and c.dns.nameservers == ()
    assert c.storage.url == f"sqlite:///{CHECKOUT / 'var' / 'relay.db'}"
    assert c.aliases.key_file == CHECKOUT / "var" / "alias.keys"
    assert c.limits == config_mod.LimitsConfig()  # relay.toml states the defaults
    assert (c.smtp.tls_cert, c.smtp.require_tls) == (None, False)
    assert c.storage.encryption_key_file == CHECKOUT / "var" / "storage.keys" and c.storage.encrypt is True


def test_limits_zero_switches_a_rate_limit_off(tmp_path):
    c = load(tmp_path, "[limits]\nper_sender_per_hour = 0\nper_thread_per_hour = 0\nper_ip_per_minute = 0\n"
                       "max_recipients = 5\nsession_timeout = 60.5\n")
    assert (c.limits.per_sender_per_hour, c.limits.per_thread_per_hour, c.limits.per_ip_per_minute) == (0, 0, 0)
    assert (c.limits.max_recipients, c.limits.session_timeout) == (5, 60.5)


def test_an_empty_file_gives_the_defaults(tmp_path):
    c = load(tmp_path, "")
    assert c.delivery.mode == "mx" and c.delivery.smarthost is None
    assert c.aliases.domain == "marketplace.example"
    assert c.delivery.retry_schedule[0] > 0 and c.delivery.max_age > 0


def test_relative_paths_are_relative_to_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    c = load(tmp_path, '[aliases]\nkey_file = "k/alias.keys"\n[storage]\nurl = "sqlite:///db/relay.db"\n')
    assert c.aliases.key_file == tmp_path / "k" / "alias.keys"
    assert c.storage.url == f"sqlite:///{tmp_path / 'db' / 'relay.db'}"


def test_absolute_paths_and_other_databases_are_kept(tmp_path):
    c = load(tmp_path, f'[aliases]\nkey_file = "{tmp_path}/a.keys"\n[storage]\nurl = "sqlite:///{tmp_path}/r.db"\n')
    assert c.aliases.key_file == tmp_path / "a.keys"
    assert c.storage.url == f"sqlite:///{tmp_path}/r.db"
    url = "postgresql+psycopg://relay@db.internal/relay"
    assert load(tmp_path, f'[storage]\nurl = "{url}"\n').storage.url == url


def test_good_delivery_and_dns_values(tmp_path):
    c = load(tmp_path, '[delivery]\nmode = "smarthost"\nsmarthost = "mail.internal:2526"\n'
                       'retry_schedule = [1, 2.5, 10]\nmax_age = 3600\nmx_port = 2525\n'
                       '[dns]\nnameservers = ["127.0.0.1:5353", "[::1]:53", "::1", "10.0.0.1"]\n')
    assert c.delivery.smarthost == ("mail.internal", 2526)
    assert c.delivery.retry_schedule == (1.0, 2.5, 10.0) and c.delivery.max_age == 3600
    assert c.delivery.mx_port == 2525
    assert c.dns.nameservers == (("127.0.0.1", 5353), ("::1", 53), ("::1", 53), ("10.0.0.1", 53))
    assert load(tmp_path, '[delivery]\nmode = "smarthost"\nsmarthost = "[::1]"\n').delivery.smarthost == ("::1", 25)


@pytest.mark.parametrize("text, names", [
    ("[smtp]\nport = 70000\n", "[smtp] port"),
    ("[smtp]\nport = -1\n", "[smtp] port"),
    ('[smtp]\nport = "2525"\n', "[smtp] port"),
    ("[smtp]\nport = true\n", "[smtp] port"),
    ("[delivery]\nmx_port = 65536\n", "[delivery] mx_port"),
    ("[delivery]\nmx_port = 0\n", "[delivery] mx_port"),
    ('[smtp]\nhostname = "relay.example\\r\\nX-Injected: 1"\n', "[smtp] hostname"),
    ('[smtp]\nhostname = ""\n', "[smtp] hostname"),
    ("[smtp]\nmax_message_bytes = 10\n", "[smtp] max_message_bytes"),
    ("[smtp]\ntimeout = 0\n", "[smtp] timeout"),
    ('[delivery]\nmode = "lmtp"\n', "[delivery] mode"),
    ('[delivery]\nmode = "MX"\n', "[delivery] mode"),
    ('[delivery]\nmode = "smarthost"\n', "smarthost"),
    ('[delivery]\nmode = "smarthost"\nsmarthost = "127.0.0.1:0"\n', "[delivery] smarthost"),
    ('[delivery]\nmode = "smarthost"\nsmarthost = "127.0.0.1:smtp"\n', "[delivery] smarthost"),
    ('[delivery]\nmode = "smarthost"\nsmarthost = ":25"\n', "[delivery] smarthost"),
    ('[delivery]\nmode = "smarthost"\nsmarthost = "mail host:25"\n', "[delivery] smarthost"),
    ('[delivery]\nmode = "smarthost"\nsmarthost = "a:b:c"\n', "[delivery] smarthost"),
    ("[delivery]\nretry_schedule = []\n", "[delivery] retry_schedule"),
    ("[delivery]\nretry_schedule = [60, 0]\n", "[delivery] retry_schedule"),
    ('[delivery]\nretry_schedule = ["60"]\n', "[delivery] retry_schedule"),
    ("[delivery]\nretry_schedule = [nan]\n", "[delivery] retry_schedule"),
    ("[delivery]\nretry_schedule = 60\n", "[delivery] retry_schedule"),
    ("[delivery]\nmax_age = -5\n", "[delivery] max_age"),
    ("[delivery]\nmax_age = nan\n", "[delivery] max_age"),
    ("[delivery]\nconcurrency = 0\n", "[delivery] concurrency"),
    ('[dns]\nnameservers = ["127.0.0.1:abc"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = ["127.0.0.1:0"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = ["127.0.0.1:70000"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = [":53"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = ["[::1"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = ["[::1]x"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = ["localhost:53"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = ["1.2.3.4:53:9"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = "127.0.0.1:53"\n', "[dns] nameservers"),
    ('[aliases]\ndomain = "not a domain"\n', "[aliases] domain"),
    ('[storage]\nencrypt = "yes"\n', "[storage] encrypt"),
    ("[storage]\nencrypt = 1\n", "[storage] encrypt"),
    ("[storage]\nencryption_key_file = 5\n", "[storage] encryption_key_file"),
    ('[aliases]\ndomain = "localhost"\n', "[aliases] domain"),
    ("[aliases]\nkey_file = 5\n", "[aliases] key_file"),
    ('[marketplace]\nnotices_from = "Marketplace <no-reply@marketplace.example>"\n', "[marketplace] notices_from"),
    ('[marketplace]\nname = "Market\\nplace"\n', "[marketplace] name"),
    ("[limits]\nper_sender_per_hour = -1\n", "[limits] per_sender_per_hour"),
    ('[limits]\nper_thread_per_hour = "10"\n', "[limits] per_thread_per_hour"),
    ("[limits]\nper_ip_per_minute = 1.5\n", "[limits] per_ip_per_minute"),
    ("[limits]\nmax_connections = 0\n", "[limits] max_connections"),
    ("[limits]\nmax_recipients = 0\n", "[limits] max_recipients"),
    ("[limits]\nmax_header_bytes = 100\n", "[limits] max_header_bytes"),
    ("[limits]\nsession_timeout = 0\n", "[limits] session_timeout"),
    ("[limits]\nper_hour = 5\n", "[limits] per_hour"),
    ("[smtp]\nmax_recipients = 20\n", "[smtp] max_recipients"),
    ('[policy]\nenabled = "yes"\n', "[policy] enabled"),
    ('[policy]\ndisabled_rules = ["links", "no_such_rule"]\n', "[policy] disabled_rules"),
    ('[policy]\ndisabled_rules = "links"\n', "[policy] disabled_rules"),
    ('[policy]\nlink_allow_domains = ["not a domain"]\n', "[policy] link_allow_domains"),
    ('[policy]\nlink_allow_domains = ["localhost"]\n', "[policy] link_allow_domains"),
    ("[policy]\npromotion_threshold = 0\n", "[policy] promotion_threshold"),
    ('[policy]\nreviews_threshold = "3"\n', "[policy] reviews_threshold"),
    ("[policy]\npayment_threshold = nan\n", "[policy] payment_threshold"),
    ('[policy]\ndata_dir = "no/such/folder"\n', "[policy] data_dir"),
    ("[policy]\nthreshold = 3\n", "[policy] threshold"),
    ('[dkim]\nselector = "bad selector"\n', "[dkim] selector"),
    ('[dkim]\nselector = ""\n', "[dkim] selector"),
    ('[dkim]\nsign = "yes"\n', "[dkim] sign must be true or false"),
    ('[dkim]\nkey_file = 3\n', "[dkim] key_file must be a string"),
    ('[dkim]\nkeyfile = "x"\n', "unknown key [dkim] keyfile"),
    ('[delivery]\ntls_ca_file = "missing.pem"\n', "[delivery] tls_ca_file: no such file"),
    ('[delivery]\ntls_ca_file = 5\n', "[delivery] tls_ca_file must be a string"),
    ('[delivery]\nrequire_tls_domains = "example.org"\n', "[delivery] require_tls_domains must be a list"),
    ('[delivery]\nrequire_tls_domains = ["not a domain"]\n', "[delivery] require_tls_domains"),
    ('[smtp]\nprot = 25\n', "[smtp] prot"),
    ('[mail]\nport = 25\n', "[mail]"),
    ("smtp = 5\n", "[smtp]"),
])
def test_each_bad_value_names_its_key(tmp_path, text, names):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert names in message, message
    assert "\n" not in message


def test_missing_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config_mod.load(tmp_path / "nothing.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        config_mod.load(tmp_path)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path, "[smtp\nport = 1\n")


def test_the_default_path_is_the_variable_then_relay_toml(monkeypatch):
    monkeypatch.setenv("RELAY_CONFIG", "/etc/relay/relay.toml")
    assert config_mod.default_path() == Path("/etc/relay/relay.toml")
    monkeypatch.delenv("RELAY_CONFIG")
    assert config_mod.default_path() == Path("relay.toml")
